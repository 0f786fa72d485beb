/**
 * The fan-out baseline: a bare server that speaks just enough of graphql-sse (distinct connections
 * mode) and graphql-ws for their real clients to subscribe, and on each Redis message writes that
 * message, already serialised, to every subscriber: the same frame bytes to each SSE socket, and a
 * frame that differs only by the subscription id to each WebSocket. No GraphQL, no auth, no
 * database: what fan-out costs when a server does nothing else.
 *
 * A message is an SSE event id (may be empty), a newline, and the result's JSON, as Jobwire sends
 * them; RAW_FANOUT_FIRST is the one every subscriber gets first.
 */
import { createServer, type ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';

const { REDIS_URL, RAW_FANOUT_CHANNEL, RAW_FANOUT_PORT, RAW_FANOUT_FIRST } = process.env as Record<string, string>;

/** A message as its SSE frame (encoded once for every stream, as Jobwire does) and its JSON. */
function framed(message: string) {
  const split = message.indexOf('\n');
  const id = message.slice(0, split);
  const payload = message.slice(split + 1);
  return { payload, sse: Buffer.from(`event: next\ndata: ${payload}${id ? `\nid: ${id}` : ''}\n\n`) };
}

/** The current state every subscriber gets first, as Jobwire's `jobProgress` sends the job's state. */
let current = framed(RAW_FANOUT_FIRST!);
const streams = new Set<ServerResponse>();
const sockets = new Map<WebSocket, string[]>();

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(current.sse);
    streams.add(res);
    res.on('close', () => streams.delete(res));
  });
});

const wss = new WebSocketServer({ server, handleProtocols: (protocols) => [...protocols][0] ?? false });
wss.on('connection', (socket) => {
  sockets.set(socket, []);
  socket.on('message', (raw) => {
    const message = JSON.parse(String(raw)) as { type: string; id?: string };
    if (message.type === 'connection_init') socket.send('{"type":"connection_ack"}');
    else if (message.type === 'subscribe' && message.id) {
      sockets.get(socket)!.push(message.id);
      socket.send(`{"id":${JSON.stringify(message.id)},"type":"next","payload":${current.payload}}`);
    } else if (message.type === 'ping') socket.send('{"type":"pong"}');
  });
  socket.on('close', () => sockets.delete(socket));
});

const listener = new Redis(REDIS_URL!);
listener.on('message', (_channel, message: string) => {
  current = framed(message);
  const { payload, sse } = current;
  for (const stream of streams) stream.write(sse);
  for (const [socket, ids] of sockets) {
    for (const id of ids) socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`);
  }
});
await listener.subscribe(RAW_FANOUT_CHANNEL!);
server.listen(Number(RAW_FANOUT_PORT), () => console.log('raw fan-out ready'));

process.on('SIGTERM', () => {
  listener.disconnect();
  for (const stream of streams) stream.end();
  for (const socket of sockets.keys()) socket.terminate();
  server.close(() => process.exit(0));
});
