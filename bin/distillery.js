#!/usr/bin/env node
// Entry point of the `distillery` command. The sources are TypeScript, run through tsx's
// loader so that there is no build step between a checkout and a running node.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../services/cli/main.ts');
await main(process.argv);
