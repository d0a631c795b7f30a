/** How an operator's relay address becomes the link URL and the devices' base URL. */
import { RELAY_BRIDGE_PATH, relayUrls } from '../../formats/relay-frames';

test.each([
  ['https://relay.example.com', 'wss://relay.example.com', 'https://relay.example.com'],
  ['https://relay.example.com/', 'wss://relay.example.com', 'https://relay.example.com'],
  [
    'wss://relay.example.com:8443',
    'wss://relay.example.com:8443',
    'https://relay.example.com:8443',
  ],
  [`wss://r.example.com${RELAY_BRIDGE_PATH}`, 'wss://r.example.com', 'https://r.example.com'],
  ['http://127.0.0.1:8788', 'ws://127.0.0.1:8788', 'http://127.0.0.1:8788'],
  ['ws://localhost:9', 'ws://localhost:9', 'http://localhost:9'],
  ['http://[::1]:8788', 'ws://[::1]:8788', 'http://[::1]:8788'],
])('%s → link %s, devices %s', (input, link, devices) => {
  expect(relayUrls(input)).toEqual({ linkUrl: `${link}${RELAY_BRIDGE_PATH}`, publicUrl: devices });
});

test.each([
  ['relay.example.com', 'not a URL'],
  ['ftp://relay.example.com', 'https:// or wss://'],
  ['http://relay.example.com', 'plain only for a loopback relay'],
  ['ws://10.0.0.5:8788', 'plain only for a loopback relay'],
  ['https://user:pw@relay.example.com', 'no credentials'],
  ['https://relay.example.com/?token=x', 'no credentials, query'],
  ['https://relay.example.com/#x', 'fragment'],
  ['https://relay.example.com/other', 'has no path'],
])('%s is refused (%s)', (input, why) => {
  const r = relayUrls(input);
  expect('problem' in r && r.problem).toContain(why);
});
