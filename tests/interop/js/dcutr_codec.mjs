// @libp2p/dcutr's own HolePunch protobuf codec (the message js-libp2p reads and writes on
// /libp2p/dcutr), for tests/interop/test_js_dcutr_wire.py: does federation/dcutr.py speak it?
// stdin: one JSON object {"decode": ["<hex>", ...], "encode": [{"type": "CONNECT"|"SYNC", "addrs": ["<hex>"]}]}
// stdout: one JSON object {"decoded": [{"type", "addrs": ["<hex>"]} | {"error"}], "encoded": ["<hex>", ...]}
// (addresses are binary multiaddrs, as on the wire)
// (the codec is not in the package's exports map: imported by path)
import { HolePunch } from './node_modules/@libp2p/dcutr/dist/src/pb/message.js'

let input = ''
for await (const chunk of process.stdin) input += chunk
const req = JSON.parse(input)
const decoded = (req.decode ?? []).map(hex => {
  try {
    const msg = HolePunch.decode(Uint8Array.from(Buffer.from(hex, 'hex')))
    return { type: msg.type, addrs: msg.observedAddresses.map(b => Buffer.from(b).toString('hex')) }
  } catch (e) {
    return { error: String(e && e.message || e) }
  }
})
const encoded = (req.encode ?? []).map(m => Buffer.from(HolePunch.encode({
  type: m.type, observedAddresses: m.addrs.map(a => Uint8Array.from(Buffer.from(a, 'hex')))
})).toString('hex'))
process.stdout.write(JSON.stringify({ decoded, encoded }) + '\n')
