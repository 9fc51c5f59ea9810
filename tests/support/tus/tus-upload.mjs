// Uploads one file with the real tus-js-client under Node, as a third-party client would, resumably:
// the upload's URL is kept in a FileUrlStorage, so the same command run again (after this process was
// killed, say) continues where the server says the upload stands.
//
//   node tus-upload.mjs ENDPOINT TOKEN FILE URL_STORAGE [METADATA_JSON]
//
// Prints one JSON object per line: {"resumed_from": n} when it resumed, {"offset": n} after each part,
// then {"job": url, "largest_part": n} on success or {"error": "..."} (exit 1).
import fs from 'node:fs'
import { Upload, FileUrlStorage } from 'tus-js-client'

const [endpoint, token, file, storage, metadataJson] = process.argv.slice(2)
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n')
let job = null
let largestPart = 0

const upload = new Upload(fs.createReadStream(file), {
  endpoint,
  chunkSize: 4 * 1024 * 1024,
  retryDelays: [0, 1000, 3000, 5000],
  headers: { Authorization: `Bearer ${token}` },
  metadata: JSON.parse(metadataJson || '{}'),
  urlStorage: new FileUrlStorage(storage),
  onChunkComplete (chunkSize, bytesAccepted) {
    largestPart = Math.max(largestPart, chunkSize)
    say({ offset: bytesAccepted })
  },
  onAfterResponse (req, res) {
    if (req.getMethod() === 'HEAD') say({ resumed_from: Number(res.getHeader('Upload-Offset')) })
    job = res.getHeader('Vid2mp3-Job') || job
  },
  onSuccess () { say({ job, upload: upload.url, largest_part: largestPart }) },
  onError (err) {
    say({ error: String(err) })
    process.exit(1)
  }
})

const previous = await upload.findPreviousUploads()
if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0])
upload.start()
