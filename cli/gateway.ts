// `heliomesh gateway add-node ID`: issue MQTT credentials for one node.
import { Command } from 'commander';
import { addNode } from '../gateway/broker/index.js';

export const DEFAULT_CREDENTIALS_FILE = 'gateway-nodes.json';

export function registerGateway(program: Command): void {
  const gateway = program.command('gateway').description('the fleet gateway: MQTT broker, node registry, scheduler, InfluxDB logging');

  gateway
    .command('add-node')
    .description('create MQTT credentials for a node and print its password once (only a salted scrypt hash is stored)')
    .argument('<id>', 'node id: 1-63 letters, digits, _ or -; also the MQTT client id the node must use')
    .option('--file <path>', 'credentials file (created with mode 0600 when missing)', DEFAULT_CREDENTIALS_FILE)
    .option('--replace', 'issue a new password for a node that already has one')
    .action(async (id: string, opts: { file: string; replace?: boolean }) => {
      const password = await addNode(opts.file, id, { replace: opts.replace });
      console.log(`node ${id} added to ${opts.file}`);
      console.log(`password: ${password}`);
      console.log('Put it in the node\'s config now; it is not stored anywhere and cannot be shown again.');
    });
}
