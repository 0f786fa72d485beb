/**
 * The message parser thread (see ./parser-thread.ts): parses each message it is sent, several at
 * once as they come, and answers each by its id.
 */
import { parentPort } from 'node:worker_threads';
import { serveParses } from './parser-thread.js';

// No stack here is read (answers and crashes are reported by their messages), and mailparser
// makes and drops an error per message (ending a stream twice): their stacks were 2% of its time.
Error.stackTraceLimit = 0;

serveParses(parentPort!);
