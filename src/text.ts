/**
 * Peer-controlled text made safe to print. Message texts, client and trace ids, close
 * reasons and a conformance check's details come from peers: a control character in them
 * must not reach a terminal or a log line (an ESC sequence repaints the terminal, a newline
 * forges a whole line). Below the CLI and the conformance kit, which both print such text.
 */

/**
 * Characters shown escaped: C0 controls (with ESC, CR and LF), DEL, C1 controls, the
 * Unicode line and paragraph separators and the bidirectional overrides and isolates
 * (which reorder what a terminal shows), and the backslash, so that an escape in the
 * output always means one in the text.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const UNSAFE = /[\x00-\x1f\x7f-\x9f\\\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** Those of them JSON.stringify writes raw (it escapes C0, quote and backslash itself). */
const JSON_UNSAFE = /[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

function hex(c: string, width: number): string {
  return c.charCodeAt(0).toString(16).padStart(width, '0');
}

/** `text` with every control character as a visible escape (\n, \x1b, \u{202e}, \\). */
export function escapeControl(text: string): string {
  return text.replace(
    UNSAFE,
    (c) => NAMED[c] ?? (c.charCodeAt(0) <= 0xff ? `\\x${hex(c, 2)}` : `\\u{${hex(c, 4)}}`),
  );
}

/** A JSON text with the characters above written as \u escapes (still the same JSON). */
export function escapeJson(json: string): string {
  return json.replace(JSON_UNSAFE, (c) => `\\u${hex(c, 4)}`);
}
