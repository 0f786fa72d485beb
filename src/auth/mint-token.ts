// `npm run token -- --sub alice --role user [--ttl 86400]`: prints a development token.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/env.js';
import { mintToken } from './tokens.js';

const { values } = parseArgs({
  options: { sub: { type: 'string' }, role: { type: 'string', default: 'user' }, ttl: { type: 'string', default: '86400' } },
});
if (!values.sub || (values.role !== 'user' && values.role !== 'admin') || !/^\d+$/.test(values.ttl!)) {
  console.error('usage: npm run token -- --sub <owner> [--role user|admin] [--ttl seconds]');
  process.exit(2);
}
const config = loadConfig();
console.log(await mintToken(config.JWT_SECRET, { sub: values.sub, role: values.role, ttlSeconds: Number(values.ttl) }));
