// `npm run token -- --sub alice --role user [--ttl 86400]`: prints a development token.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/env.js';
import { mintToken } from './tokens.js';

const USAGE = 'usage: npm run token -- --sub <owner> [--role user|admin] [--ttl seconds]';

let values: { sub?: string; role?: string; ttl?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      sub: { type: 'string' },
      role: { type: 'string', default: 'user' },
      ttl: { type: 'string', default: '86400' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  // An unknown option or one without its value: say which, then how it is used, without a stack.
  console.error(`${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(`${USAGE}\nPrints a token signed with JWT_SECRET (from the environment), valid for --ttl seconds.`);
  process.exit(0);
}
if (!values.sub || (values.role !== 'user' && values.role !== 'admin') || !/^\d+$/.test(values.ttl!)) {
  console.error(USAGE);
  process.exit(2);
}
const config = loadConfig();
console.log(await mintToken(config.JWT_SECRET, { sub: values.sub, role: values.role, ttlSeconds: Number(values.ttl) }));
