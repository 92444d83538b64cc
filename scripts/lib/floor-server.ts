/**
 * Reference servers for the benchmarks, run as their own process: `noop` (express, reads the body, answers
 * a fixed 200) and `inflate` (the same plus a capped zlib inflate of the body): the floor our ingest is
 * measured against in the same run.
 */
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import express from 'express';

const inflate = promisify(zlib.inflate);
const mode = process.argv[2] ?? 'noop';
const app = express();
app.use(express.raw({ type: () => true, limit: '64mb' }));
app.all('/{*any}', async (req, res) => {
  if (mode === 'inflate' && Buffer.isBuffer(req.body) && req.body.length > 0)
    await inflate(req.body, { maxOutputLength: 64 * 1024 * 1024 });
  res
    .type('application/xml')
    .send('<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><RESPONSE>SEND</RESPONSE></REPLY>\n');
});
const server = app.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
