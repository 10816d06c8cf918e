#!/usr/bin/env node
// The single `heliomesh` command. Each verb lives in its own file and registers itself
// here; this file only parses arguments and reports errors a user can act on.
import { Command, CommanderError } from 'commander';
import { registerAgent } from './agent.js';
import { registerBench } from './bench.js';
import { registerDemo } from './demo.js';
import { registerGateway } from './gateway.js';
import { registerHw } from './hw.js';
import { registerModel } from './model.js';
import { registerSim } from './sim.js';
import { registerStatus } from './status.js';

const program = new Command();
program
  .name('heliomesh')
  .description('LLM inference over solar-powered edge fleets, scheduled by a semi-Markov energy model')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

registerSim(program);
registerModel(program);
registerBench(program);
registerHw(program);
registerGateway(program);
registerStatus(program);
registerAgent(program);
registerDemo(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  console.error(`heliomesh: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
