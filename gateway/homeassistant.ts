// Home Assistant MQTT discovery: when a node comes online, the gateway publishes retained
// discovery configs under `<prefix>/<component>/<object id>/config`, so the node's battery,
// harvest, consumption, power mode, power saving and connectivity appear in Home Assistant
// as one device with no YAML. The entities read the node's own slot and state topics
// (protocol/topics.ts): nothing is published twice, and Home Assistant needs only read
// access to them on the broker it shares with the fleet (deploy/mosquitto/aclfile).
import { z } from 'zod';
import type { Logger } from 'pino';
import { nodeTopic, PROTOCOL_VERSION } from '../protocol/index.js';

export const HomeAssistantConfigSchema = z.strictObject({
  /** Home Assistant's discovery prefix (its MQTT integration's setting; 'homeassistant' by default). */
  discoveryPrefix: z.string().regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, 'one or more topic levels of letters, digits, _ or -, without wildcards').default('homeassistant'),
});

export type HomeAssistantConfig = z.infer<typeof HomeAssistantConfigSchema>;

export interface DiscoveryMessage {
  topic: string;
  /** The config, as JSON. */
  payload: string;
}

interface Entity {
  component: 'sensor' | 'binary_sensor';
  key: string;
  name: string;
  from: 'slot' | 'state';
  config: Record<string, unknown>;
}

// Slot records carry energies per slot; J ÷ s is the slot's mean power in W.
const meanPowerW = (field: string) => `{{ (value_json.${field} * 1000 / value_json.slotMs) | round(2) }}`;

const ENTITIES: Entity[] = [
  { component: 'sensor', key: 'battery', name: 'Battery', from: 'slot', config: { device_class: 'battery', unit_of_measurement: '%', state_class: 'measurement', value_template: '{{ value_json.batteryPct | round(1) }}' } },
  { component: 'sensor', key: 'battery_energy', name: 'Battery energy', from: 'slot', config: { unit_of_measurement: 'J', state_class: 'measurement', value_template: '{{ value_json.batteryJ | round(0) }}', entity_category: 'diagnostic' } },
  { component: 'sensor', key: 'harvest', name: 'Solar harvest', from: 'slot', config: { device_class: 'power', unit_of_measurement: 'W', state_class: 'measurement', value_template: meanPowerW('harvestJ') } },
  { component: 'sensor', key: 'consumption', name: 'Consumption', from: 'slot', config: { device_class: 'power', unit_of_measurement: 'W', state_class: 'measurement', value_template: meanPowerW('consumedJ') } },
  { component: 'sensor', key: 'power_mode', name: 'Power mode', from: 'slot', config: { value_template: '{{ value_json.powerMode }}', icon: 'mdi:speedometer' } },
  { component: 'sensor', key: 'queue', name: 'Queued jobs', from: 'slot', config: { state_class: 'measurement', value_template: '{{ value_json.queue }}', entity_category: 'diagnostic' } },
  // γ = 0 is power saving (SPEC.md §3).
  { component: 'binary_sensor', key: 'power_saving', name: 'Power saving', from: 'slot', config: { value_template: "{{ 'ON' if value_json.gamma == 0 else 'OFF' }}", icon: 'mdi:battery-alert' } },
  // The retained birth and the will: status online / offline.
  { component: 'binary_sensor', key: 'online', name: 'Online', from: 'state', config: { device_class: 'connectivity', value_template: "{{ 'ON' if value_json.status == 'online' else 'OFF' }}", entity_category: 'diagnostic' } },
];

/** The retained discovery configs that make one node a Home Assistant device. */
export function discoveryMessages(c: HomeAssistantConfig, fleet: string, nodeId: string, group: string): DiscoveryMessage[] {
  const base = `heliomesh_${fleet}_${nodeId}`.replace(/-/g, '_');
  const stateTopic = nodeTopic(fleet, nodeId, 'state');
  const device = {
    identifiers: [base],
    name: `Heliomesh ${nodeId}`,
    manufacturer: 'Heliomesh',
    model: `solar node, group ${group}`,
    suggested_area: fleet,
  };
  return ENTITIES.map((e) => {
    const objectId = `${base}_${e.key}`;
    const config: Record<string, unknown> = {
      name: e.name,
      unique_id: objectId,
      state_topic: nodeTopic(fleet, nodeId, e.from),
      ...e.config,
      // Entities other than connectivity go unavailable with the node (its will), so a
      // stale battery reading is not shown as current.
      ...(e.key === 'online' ? {} : { availability_topic: stateTopic, availability_template: '{{ value_json.status }}', payload_available: 'online', payload_not_available: 'offline' }),
      device,
      origin: { name: 'Heliomesh', sw_version: `protocol ${PROTOCOL_VERSION}` },
    };
    return { topic: `${c.discoveryPrefix}/${e.component}/${objectId}/config`, payload: JSON.stringify(config) };
  });
}

/** Publishes each node's discovery configs once per gateway run, and again if its group changes. */
export class HomeAssistantDiscovery {
  private readonly announced = new Map<string, string>();

  constructor(
    private readonly config: HomeAssistantConfig & { fleet: string },
    private readonly deps: { publish: (m: DiscoveryMessage) => void; log: Logger },
  ) {}

  announce(nodeId: string, group: string): void {
    if (this.announced.get(nodeId) === group) return;
    this.announced.set(nodeId, group);
    const messages = discoveryMessages(this.config, this.config.fleet, nodeId, group);
    for (const m of messages) this.deps.publish(m);
    this.deps.log.info({ node: nodeId, entities: messages.length, prefix: this.config.discoveryPrefix }, 'Home Assistant discovery published');
  }
}
