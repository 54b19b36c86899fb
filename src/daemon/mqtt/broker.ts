/**
 * The embedded broker (aedes, in process) used when no broker URL is configured, so that the daemon
 * runs on a fresh machine. It listens on localhost only by default.
 */
import net from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { ZeroqError } from '../../util/errors.js';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(host: string, port: number, log: Logger): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      aedes.close();
      const hint = err.code === 'EADDRINUSE' ? ' (a broker already runs there? set mqtt.url to use it, or mqtt.embedded.port)' : '';
      reject(new ZeroqError('mqtt-broker', `cannot listen on ${host}:${port}: ${err.message}${hint}`, 'mqtt.embedded'));
    });
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `mqtt://${hostPart}:${addr.port}`;
  log.info({ url }, 'embedded MQTT broker listening');
  return {
    url,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        // Clients (ours included) are disconnected by aedes.close; the server then closes.
        aedes.close(() => server.close(() => resolve()));
      }),
  };
}
