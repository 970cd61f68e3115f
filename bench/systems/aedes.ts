/**
 * aedes, an MQTT broker over `net`, with mqtt.js clients. MQTT's heartbeat is the
 * client's keepalive (in whole seconds): the client sends PINGREQ when it has sent
 * nothing for `keepalive`, and the broker drops a client silent for 1.5 x keepalive.
 */

import { createServer, connect as netConnect, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { MqttClient } from 'mqtt';
import { closeNetServer, listen } from './net.js';
import type {
  ClientHandle,
  IdleClientOptions,
  IdleServer,
  IdleServerOptions,
  System,
} from './types.js';

async function startIdleServer(o: IdleServerOptions): Promise<IdleServer> {
  const broker = await Aedes.createBroker();
  let pings = 0;
  broker.on('ping', () => {
    pings++;
  });
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  const port = await listen(server);
  return {
    port,
    deadAfterMs: 1.5 * Math.max(1000, o.interval),
    heartbeat: `client keepalive ${o.interval / 1000} s (PINGREQ), broker drops after 1.5 x keepalive (a timer per client)`,
    connections: () => broker.connectedClients,
    heartbeats: () => pings,
    detections: () => [],
    close: async () => {
      await closeNetServer(server, sockets);
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

async function openIdleClient(o: IdleClientOptions): Promise<ClientHandle> {
  const client = new MqttClient(
    () => netConnect({ host: o.host, port: o.port, localAddress: o.localAddress, noDelay: true }),
    {
      clientId: o.id,
      keepalive: Math.max(1, Math.round(o.interval / 1000)),
      reconnectPeriod: 0,
      clean: true,
      protocolVersion: 4,
      connectTimeout: 60_000,
    },
  );
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', (err) => reject(err));
    client.once('close', () => reject(new Error('mqtt client closed before CONNACK')));
  });
  client.on('error', () => {});
  client.once('close', () => o.onLost('close'));
  return { close: () => client.end(true) };
}

export const aedes: System = {
  name: 'aedes',
  label: 'aedes + mqtt.js',
  startIdleServer,
  openIdleClient,
};
