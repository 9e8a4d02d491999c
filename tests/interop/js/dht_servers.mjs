// N js-libp2p Kademlia servers (/ipfs/kad/1.0.0, server mode) on 127.0.0.1: a stand-in of the
// public (Amino) DHT built from an implementation no one on this project wrote.
// usage: node dht_servers.mjs N [--ips=IP1,IP2,...] [--relay]
//   --ips:   node i listens on IPi (default 127.0.0.1 for all; tests/interop/test_js_grid.py
//            gives each its own address on the NAT lab's public bridge)
//   --relay: each node also runs a Circuit Relay v2 server (@libp2p/circuit-relay-v2, its
//            default limits) and @libp2p/dcutr, as public js/go nodes do
// stdout: one JSON line {"op":"ready","nodes":[{"id","addrs"}]}, then one line per answer.
// stdin:  JSON lines {"op":"providers","key":"<hex multihash>"} -> which peers each node stores
//         as providers of that key (its own provider store), and what a network lookup finds;
//         {"op":"relays"} -> the peers holding a reservation at each node's relay server.
import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { createInterface } from 'node:readline'

const count = Number(process.argv[2] || 5)
const opt = (name) => process.argv.slice(3).find(a => a === `--${name}` || a.startsWith(`--${name}=`))
const ips = (opt('ips') ?? '').split('=')[1]?.split(',').filter(Boolean) ?? []
const withRelay = opt('relay') != null
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function makeNode (ip) {
  const services = {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({ protocol: '/ipfs/kad/1.0.0', clientMode: false, peerInfoMapper: passthroughMapper,
      allowQueryWithZeroPeers: true })
  }
  if (withRelay) {
    services.relay = circuitRelayServer()
    services.dcutr = dcutr()
  }
  return createLibp2p({
    addresses: { listen: [`/ip4/${ip}/tcp/0`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services
  })
}

const nodes = []
for (let i = 0; i < count; i++) nodes.push(await makeNode(ips[i] ?? '127.0.0.1'))
// a connected js DHT, as the public one is
for (let i = 1; i < nodes.length; i++) {
  await nodes[i].dial(nodes[0].getMultiaddrs()[0])
}
out({ op: 'ready', nodes: nodes.map(n => ({ id: n.peerId.toString(), addrs: n.getMultiaddrs().map(String) })) })

const cidOf = (hex) => CID.createV0(Digest.decode(Uint8Array.from(Buffer.from(hex, 'hex'))))

async function providers (hex) {
  const cid = cidOf(hex)
  const stored = []
  for (const n of nodes) {
    const ps = await n.services.dht.providers.getProviders(cid)
    stored.push(ps.map(p => (p.id ?? p).toString()))
  }
  const found = []
  try {
    for await (const p of nodes[0].contentRouting.findProviders(cid, { signal: AbortSignal.timeout(5000) })) {
      found.push({ id: p.id.toString(), addrs: p.multiaddrs.map(String) })
    }
  } catch (e) { /* timeout: what was found so far */ }
  return { op: 'providers', key: hex, cid: cid.toString(), stored, found }
}

const rl = createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  let msg
  try { msg = JSON.parse(line) } catch { return }
  try {
    if (msg.op === 'providers') out(await providers(msg.key))
    else if (msg.op === 'relays') {
      out({ op: 'relays', reserved: nodes.map(n => n.services.relay == null ? []
        : [...n.services.relay.reservations.keys()].map(String)) })
    }
    else if (msg.op === 'stop') { await Promise.all(nodes.map(n => n.stop())); process.exit(0) }
  } catch (e) { out({ op: 'error', message: String(e && e.stack || e) }) }
})
rl.on('close', async () => { await Promise.all(nodes.map(n => n.stop())); process.exit(0) })
