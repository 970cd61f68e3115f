/**
 * What every system under test provides to the harness: an idle server with its
 * heartbeat, an idle client, (for the message benchmark) an echo server and client, and
 * (for the request benchmark) a reply server and a requester.
 * One file per system in this folder; bench/systems/index.ts loads them by name, lazily,
 * so a server process only ever loads the code of the system it runs.
 */

/** Names of the systems. */
export type SystemName = 'heartline' | 'net' | 'naive' | 'ws' | 'socketio' | 'aedes';

/** Options of an idle server. */
export interface IdleServerOptions {
  /** Heartbeat interval (ms), the same for every system. */
  interval: number;
  /** Worker processes (heartline's multi-process mode); 0 or 1 means one process. */
  workers: number;
}

/** A frozen peer the server declared dead (heartline only). */
export interface Detection {
  clientId: string;
  /** Server-side time from the last byte heard to the DEAD state (ms). */
  sinceLastHeardMs: number;
  /** Epoch ms of the DEAD state. */
  deadAt: number;
  /** Epoch ms when the server last heard the peer. */
  lastHeardAt: number;
  /** Epoch ms of the SUSPECT state, if it came first. */
  suspectAt: number | null;
  /** How the connection's link closed. */
  reason: string;
}

/** A running idle server. */
export interface IdleServer {
  port: number;
  /** Connections open (established and, where there is one, past the handshake). */
  connections(): number;
  /** Heartbeat exchanges the server took part in so far, or null where it cannot count them for free. */
  heartbeats(): number | null;
  /** Frozen peers declared dead so far (heartline only; empty elsewhere). */
  detections(): Detection[];
  /** What the server does to find dead peers, for the report. */
  readonly heartbeat: string;
  /** Longest silence before the server drops a peer (ms), or null when it never does. */
  readonly deadAfterMs: number | null;
  close(): Promise<void>;
}

/** Options of one idle client. */
export interface IdleClientOptions {
  host: string;
  port: number;
  /** Source address in 127.0.0.0/8. */
  localAddress: string;
  /** Heartbeat interval (ms). */
  interval: number;
  /** A unique id for this client. */
  id: string;
  /** Called once if the connection is lost after it opened. */
  onLost: (reason: string) => void;
}

/** An open client. */
export interface ClientHandle {
  close(): void;
}

/** Options of an echo server. */
export interface EchoServerOptions {
  host: string;
}

/** A running echo server: every message comes back to its sender. */
export interface EchoServer {
  port: number;
  close(): Promise<void>;
}

/** Options of one echo client. */
export interface EchoClientOptions {
  host: string;
  port: number;
  localAddress: string;
  id: string;
  /** Every message echoed back, in order. */
  onMessage: (payload: Buffer) => void;
  onLost: (reason: string) => void;
}

/** An open echo client. */
export interface EchoClientHandle {
  send(payload: Buffer): void;
  close(): void;
}

/** One system under test. */
export interface System {
  readonly name: SystemName;
  /** How the report names it. */
  readonly label: string;
  startIdleServer(options: IdleServerOptions): Promise<IdleServer>;
  openIdleClient(options: IdleClientOptions): Promise<ClientHandle>;
  startEchoServer?(options: EchoServerOptions): Promise<EchoServer>;
  openEchoClient?(options: EchoClientOptions): Promise<EchoClientHandle>;
  startReplyServer?(options: ReplyServerOptions): Promise<ReplyServer>;
  /** A requester; heartline's also sends with per-message acknowledgements. */
  openRequester?(options: RequesterOptions): Promise<Requester & Partial<AckedSender>>;
}

// ---- requests and replies (bench/requests.ts) -------------------------------------------

/** Options of a reply server. */
export interface ReplyServerOptions {
  host: string;
}

/** A running reply server: answers every request with its own payload. */
export interface ReplyServer {
  port: number;
  /** Stops answering: requests are kept, unanswered, until {@link release}. */
  hold(): void;
  /** Answers every held request and answers at once again; returns how many were held. */
  release(): number;
  /** Requests held right now. */
  held(): number;
  close(): Promise<void>;
}

/** Options of one requester. */
export interface RequesterOptions {
  host: string;
  port: number;
  localAddress: string;
  id: string;
  onLost: (reason: string) => void;
}

/** An open requester: one connection that asks and waits for answers. */
export interface Requester {
  /** What the system carries natively: a Buffer, or a string inside its JSON. */
  readonly payload: 'binary' | 'text';
  /** Sends a request and resolves with its reply (the same payload, echoed). */
  request(payload: Buffer | string): Promise<Buffer | string>;
  /**
   * Resolves once everything sent so far has left this process's buffers (heartline:
   * acknowledged by the peer, so the replay buffer is empty): what stays is the requests'
   * own bookkeeping.
   */
  flushed(): Promise<void>;
  close(): void;
}

/** heartline's per-message acknowledgements, for the sendAcked rows. */
export interface AckedSender {
  send(payload: Buffer): void;
  sendAcked(payload: Buffer): Promise<void>;
  whenAcked(): Promise<void>;
}
