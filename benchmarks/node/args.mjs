// Shared by the peer servers: `--port N --data-dir DIR` (port 0 picks a free one).
import fs from 'node:fs'

export const parseArgs = (argv) => {
  const out = { port: 0, dataDir: '' }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port') out.port = Number.parseInt(argv[++i], 10)
    else if (argv[i] === '--data-dir') out.dataDir = argv[++i]
    else throw new Error(`unknown argument ${argv[i]}`)
  }
  if (!out.dataDir) throw new Error('--data-dir is required')
  fs.mkdirSync(out.dataDir, { recursive: true })
  return out
}
