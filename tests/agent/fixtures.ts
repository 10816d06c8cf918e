// Shared inputs of the agent tests.
import { referenceHardwareConfig } from '../../hardware/config.js';

/** A valid agent config document on the reference virtual node. */
export function exampleDoc(): Record<string, unknown> {
  return {
    nodeId: 'pi-01', fleet: 'solar', group: 'g1',
    gateway: { url: 'mqtt://gateway.local:1883', username: 'pi-01' },
    hardware: referenceHardwareConfig('virtual'),
    powerModes: [{ powerMode: 1, name: 'low', kappa: 3, costJ: 40 }, { powerMode: 2, name: 'high', kappa: 1, costJ: 60 }],
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.5, powerMode: 2 }],
    spool: { dir: '/var/lib/heliomesh/spool' },
  };
}
