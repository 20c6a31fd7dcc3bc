// What stock yjs 13 sees in each of several replicas, for the convergence checks of
// tests/core/test_shapes.py.
//
//   echo '{"updates": [base64, ...]}' | node tests/js/canonical.mjs
//
// Each update (a replica's encodeStateAsUpdate) is applied to a fresh Y.Doc. Printed:
// {"views": [view, ...], "stateVectors": [{client: clock}, ...]} where a view maps every root
// to a canonical tree: Y.Map -> object with sorted keys, Y.Array -> array, Y.Text (and
// XmlText) -> {"$delta": toDelta()}, XML elements and fragments -> {"$xml": tag, "attrs",
// "children"}. A root takes the type its content shows (as the server's view does): map
// entries -> map, XML children -> XML fragment, strings/formats/embeds -> text, else array.
import * as Y from 'yjs'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const rootKind = (type) => {
  if (type._map.size > 0) return 'map'
  for (let item = type._start; item !== null; item = item.right) {
    const content = item.content
    if (content instanceof Y.ContentType) {
      const inner = content.type
      if (inner instanceof Y.XmlElement || inner instanceof Y.XmlText || inner instanceof Y.XmlFragment) return 'xml'
    }
    if (content instanceof Y.ContentString || content instanceof Y.ContentFormat || content instanceof Y.ContentEmbed) {
      return 'text'
    }
  }
  return 'array'
}

const canonical = (value) => {
  const out = { root: null }
  const stack = [[value, out, 'root']]
  while (stack.length > 0) {
    const [v, target, key] = stack.pop()
    if (v instanceof Y.Map) {
      const o = {}
      target[key] = o
      for (const k of [...v.keys()].sort()) stack.push([v.get(k), o, k])
    } else if (v instanceof Y.Array) {
      const a = new Array(v.length)
      target[key] = a
      v.toArray().forEach((x, i) => stack.push([x, a, i]))
    } else if (v instanceof Y.Text || v instanceof Y.XmlText) {
      const delta = v.toDelta().map((op) => ({ ...op }))
      target[key] = { $delta: delta }
      delta.forEach((op) => {
        if (typeof op.insert !== 'string') stack.push([op.insert, op, 'insert'])
      })
    } else if (v instanceof Y.XmlElement || v instanceof Y.XmlFragment) {
      const attrs = v instanceof Y.XmlElement ? v.getAttributes() : {}
      const node = { $xml: v instanceof Y.XmlElement ? v.nodeName : '#fragment', attrs: {}, children: [] }
      target[key] = node
      for (const k of Object.keys(attrs).sort()) stack.push([attrs[k], node.attrs, k])
      v.toArray().forEach((x, i) => stack.push([x, node.children, i]))
    } else if (v instanceof Y.Doc) {
      target[key] = { $doc: v.guid }
    } else if (v instanceof Uint8Array) {
      target[key] = { $binary: Buffer.from(v).toString('base64') }
    } else if (v !== null && typeof v === 'object') {
      const o = Array.isArray(v) ? new Array(v.length) : {}
      target[key] = o
      for (const k of Object.keys(v).sort()) stack.push([v[k], o, k])
    } else {
      target[key] = v === undefined ? null : v
    }
  }
  return out.root
}

const views = []
const stateVectors = []
for (const update of input.updates) {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, Buffer.from(update, 'base64'))
  const view = {}
  for (const name of [...doc.share.keys()].sort()) {
    const kind = rootKind(doc.share.get(name))
    const root =
      kind === 'map' ? doc.getMap(name)
        : kind === 'xml' ? doc.getXmlFragment(name)
          : kind === 'text' ? doc.getText(name)
            : doc.getArray(name)
    view[name] = canonical(root)
  }
  views.push(view)
  stateVectors.push(Object.fromEntries(Y.decodeStateVector(Y.encodeStateVector(doc))))
}
process.stdout.write(JSON.stringify({ views, stateVectors }) + '\n')
