/** Worker thread for ingest.bench.ts: connects the devices and publishes their telemetry. */
import { parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';

// Plain JavaScript: worker threads do not get tsx's loader.
// The client id is the device id: the embedded broker binds client ids to the device that logs in.
/** @type {{ url: string, devices: { username: string, password: string, topic: string }[], rate: number, seconds: number }} */
const { url, devices, rate, seconds } = workerData;

const clients = [];
for (let i = 0; i < devices.length; i += 50) {
  clients.push(
    ...(await Promise.all(
      devices.slice(i, i + 50).map((d) => mqtt.connectAsync(url, { username: d.username, password: d.password, clientId: d.username, reconnectPeriod: 0 })),
    )),
  );
}
parentPort.postMessage({ connected: clients.length });

let sent = 0;
const interval = 1000 / rate;
const started = Date.now();
await Promise.all(
  clients.map(async (client, i) => {
    // Spread the devices over the interval, as real devices would be.
    await new Promise((resolve) => setTimeout(resolve, (i / clients.length) * interval));
    while (Date.now() - started < seconds * 1000) {
      client.publish(devices[i].topic, JSON.stringify({ sent: Date.now(), battery: 50 + (sent % 50), temperature: 20.5 }));
      sent++;
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  }),
);
await Promise.all(clients.map((c) => c.endAsync()));
parentPort.postMessage({ sent });
