// The `eventsource` npm package (the EventSource most Node programs use) against logwisp:
// prints `connected`, then `entry <id> <message>` for each entry, `dropped <data>` and
// `error` as they happen. It reconnects by itself after an error, sending the last id it
// saw as Last-Event-ID: tests/integration/sse_clients.rs restarts logwisp under it.
//
//   node sse_client.mjs URL

import { EventSource } from 'eventsource';

const url = process.argv[2];
if (!url) {
  console.error('usage: node sse_client.mjs URL');
  process.exit(2);
}
const es = new EventSource(url);
es.addEventListener('connected', () => console.log('connected'));
es.addEventListener('dropped', e => console.log(`dropped ${e.data}`));
es.onmessage = e => console.log(`entry ${e.lastEventId} ${JSON.parse(e.data).message}`);
es.onerror = e => console.log(`error ${e.message ?? ''}`);
