#!/usr/bin/env node
// A stand-in for vLLM's OpenAI server, for the model launcher's tests: started as startVllm starts
// vLLM (`<python> -c <launcher> --model M --served-model-name N --host H --port P ...`), it answers
// GET /health and GET /v1/models. With FAKE_VLLM_CHILD=1 it also starts a child in its process
// group (as vLLM's engine core is), to test groups whose leader died; FAKE_VLLM_DELAY_MS delays
// its listening (a server still starting).
'use strict';
const http = require('node:http');
const { spawn } = require('node:child_process');
const args = process.argv.slice(2);
const arg = (flag) => args[args.indexOf(flag) + 1];
const name = arg('--served-model-name');
if (process.env.FAKE_VLLM_CHILD === '1') spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
const server = http.createServer((req, res) => {
  if (req.url === '/health') return res.end('');
  if (req.url === '/v1/models') return res.end(JSON.stringify({ object: 'list', data: [{ id: name, root: arg('--model') }] }));
  res.statusCode = 404;
  res.end('{}');
});
setTimeout(() => server.listen(Number(arg('--port')), arg('--host'), () => console.log(`fake vLLM serving ${name}`)), Number(process.env.FAKE_VLLM_DELAY_MS ?? 0));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
