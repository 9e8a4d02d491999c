// N js-libp2p Kademlia servers (/ipfs/kad/1.0.0, server mode) on 127.0.0.1: a stand-in of the
// public (Amino) DHT built from an implementation no one on this project wrote.
// stdout: one JSON line {"op":"ready","nodes":[{"id","addrs"}]}, then one line per answer.
// stdin:  JSON lines {"op":"providers","key":"<hex multihash>"} -> which peers each node stores
//         as providers of that key (its own provider store), and what a network lookup finds.
import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { createInterface } from 'node:readline'

const count = Number(process.argv[2] || 5)
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function makeNode () {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({ protocol: '/ipfs/kad/1.0.0', clientMode: false, peerInfoMapper: passthroughMapper,
        allowQueryWithZeroPeers: true })
    }
  })
}

const nodes = []
for (let i = 0; i < count; i++) nodes.push(await makeNode())
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
    else if (msg.op === 'stop') { await Promise.all(nodes.map(n => n.stop())); process.exit(0) }
  } catch (e) { out({ op: 'error', message: String(e && e.stack || e) }) }
})
rl.on('close', async () => { await Promise.all(nodes.map(n => n.stop())); process.exit(0) })
