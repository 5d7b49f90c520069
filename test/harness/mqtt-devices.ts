/** MQTT clients that log in as a device, the way a real device does. */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { AddedDevice } from './index.js';

/**
 * Connects to the broker at `url` with the device's credentials and its id as client id (the
 * broker binds client ids to devices); `options` add to or override that (another client id,
 * a will, `clean: false`). Never reconnects, so a closed connection stays closed.
 */
export function connectDevice(url: string, device: Pick<AddedDevice, 'id' | 'mqtt'>, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    username: device.mqtt.username,
    password: device.mqtt.password,
    clientId: device.id,
    reconnectPeriod: 0,
    ...options,
  });
}
