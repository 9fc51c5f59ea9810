// vid2mp3's page: log in, upload videos with tus (resumable), follow each conversion, download the MP3s.
//
// Plain JavaScript, no build step; tus-js-client (static/tus.min.js, vendored) is loaded before it. The
// page is served by the API itself, so every URL here is relative to the page. The bearer token lives in
// sessionStorage (this tab, until it is closed or the user logs out), and is sent in the Authorization
// header only: never in a URL. A download is a short-lived link the API hands out for one MP3.
'use strict'

const SESSION_KEY = 'vid2mp3.session'
const PART_BYTES = 4 * 1024 * 1024 // the API takes at most 4 MiB per request (AWS's payload limits)
const POLL_MS = 1500
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000]
const REFUSED = [400, 404, 410, 413, 415] // an upload the service refused, removed, or let expire

const $ = (id) => document.getElementById(id)
const url = (path) => new URL(path, document.baseURI).href

let session = null // {token, id, email, expiresAt}
const rows = new Map() // row key (a job's id, or a local key until an upload has one) -> Row
const following = new Set() // ids of jobs whose conversion is polled
let pollTimer = null
let nextCursor = null
let localKeys = 0

// --- talking to the API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor (status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

const UNREACHABLE = 'The service could not be reached. Check your connection and try again.'

async function call (method, path, { body, auth = true } = {}) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (auth && session) headers.Authorization = `Bearer ${session.token}`
  let response
  try {
    response = await fetch(url(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit'
    })
  } catch {
    throw new ApiError(0, 'unreachable', UNREACHABLE)
  }
  if (response.status === 204) return null
  const data = await response.json().catch(() => null)
  if (!response.ok) {
    if (response.status === 401 && auth) sessionEnded()
    const error = (data && data.error) || {}
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || `The service answered ${response.status}; try again shortly.`)
  }
  return data
}

// --- formatting -------------------------------------------------------------------------------------

function formatBytes (n) {
  if (n < 1000) return `${n} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let value = n
  let unit = -1
  do {
    value /= 1000
    unit += 1
  } while (value >= 1000 && unit < units.length - 1)
  return `${value.toFixed(value < 100 ? 1 : 0)} ${units[unit]}`
}

function formatDuration (seconds) {
  const total = Math.round(seconds)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = String(total % 60).padStart(2, '0')
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`
}

const percent = (part, whole) => (whole ? Math.floor((part / whole) * 100) : 100)

function notice (text) {
  $('notice').textContent = text
}

// --- one row per file -------------------------------------------------------------------------------

class Row {
  constructor (key, filename, { first = false } = {}) {
    this.key = key
    this.filename = filename
    this.upload = null // the tus upload while the file goes up
    this.el = $('job-template').content.firstElementChild.cloneNode(true)
    this.el.dataset.id = key
    this.part('.name').textContent = filename
    this.button('.download', `Download MP3 of ${filename}`, () => download(this))
    this.button('.delete', `Delete ${filename}`, () => remove(this))
    this.button('.cancel', `Cancel upload of ${filename}`, () => cancel(this))
    rows.set(key, this)
    if (first) $('jobs').prepend(this.el)
    else $('jobs').append(this.el)
    showEmpty()
  }

  part (selector) {
    return this.el.querySelector(selector)
  }

  button (selector, label, onClick) {
    const button = this.part(selector)
    button.setAttribute('aria-label', label) // the visible text, then which file
    button.addEventListener('click', onClick)
  }

  rekey (key) {
    if (key === this.key) return
    rows.delete(this.key)
    this.key = key
    this.el.dataset.id = key
    rows.set(key, this)
  }

  show ({ status, text, facts, progress, label, actions = [] }) {
    this.el.dataset.status = status
    if (facts !== undefined) this.part('.facts').textContent = facts
    this.part('.status').textContent = text
    const bar = this.part('progress')
    bar.hidden = progress === undefined
    if (progress === null) bar.removeAttribute('value') // indeterminate: waiting
    else if (progress !== undefined) bar.value = progress
    if (label) bar.setAttribute('aria-label', `${label} of ${this.filename}`)
    for (const name of ['download', 'delete', 'cancel']) this.part(`.${name}`).hidden = !actions.includes(name)
  }

  showUpload (sent, total, resumedFrom) {
    const resumed = resumedFrom ? `; continued from ${formatBytes(resumedFrom)}` : ''
    this.show({
      status: 'uploading',
      text: `Uploading: ${formatBytes(sent)} of ${formatBytes(total)} (${percent(sent, total)} %)${resumed}`,
      facts: formatBytes(total),
      progress: percent(sent, total),
      label: 'Upload',
      actions: ['cancel']
    })
  }

  showJob (job) {
    this.filename = job.filename
    this.part('.name').textContent = job.filename
    const facts = [formatBytes(job.size)]
    if (job.duration_s) facts.push(formatDuration(job.duration_s))
    const shown = { status: job.status, facts: facts.join(' · '), actions: ['delete'] }
    if (job.status === 'queued') {
      Object.assign(shown, { text: 'Uploaded. Waiting to convert…', progress: null, label: 'Conversion' })
    } else if (job.status === 'converting') {
      const p = job.progress || 0
      Object.assign(shown, { text: `Converting: ${p} %`, progress: p, label: 'Conversion' })
    } else if (job.status === 'done') {
      const mp3 = job.mp3
      const rate = String(mp3.bitrate).replace(/k$/, ' kbit/s')
      shown.text = `MP3 ready: ${formatBytes(mp3.size)}, ${formatDuration(mp3.duration_s)}, ${rate}`
      shown.actions = ['download', 'delete']
    } else {
      const reason = (job.error && job.error.message) || 'The conversion failed.'
      shown.text = `Could not convert: ${reason}`
    }
    this.show(shown)
  }

  drop () {
    rows.delete(this.key)
    this.el.remove()
    showEmpty()
  }
}

function showEmpty () {
  $('empty').hidden = rows.size > 0
}

// --- jobs: the list, and following each conversion ------------------------------------------------

function showJob (job) {
  const row = rows.get(job.id) || new Row(job.id, job.filename)
  row.rekey(job.id)
  row.showJob(job)
  if (job.status === 'queued' || job.status === 'converting') follow(job.id)
  return row
}

async function loadJobs () {
  const query = nextCursor ? `&cursor=${encodeURIComponent(nextCursor)}` : ''
  try {
    const page = await call('GET', `videos?limit=50${query}`)
    for (const job of page.items) showJob(job)
    nextCursor = page.next
    $('more').hidden = !nextCursor
    showEmpty()
  } catch (err) {
    if (session) notice(`Your files could not be listed: ${err.message}`)
  }
}

function follow (id) {
  following.add(id)
  if (pollTimer === null) pollTimer = setTimeout(poll, POLL_MS)
}

async function poll () {
  for (const id of [...following]) {
    if (!session) return
    try {
      const job = await call('GET', `videos/${encodeURIComponent(id)}`)
      if (!rows.has(id)) { // deleted meanwhile
        following.delete(id)
        continue
      }
      showJob(job)
      if (job.status === 'done' || job.status === 'failed') {
        following.delete(id)
        notice(job.status === 'done' ? `${job.filename}: the MP3 is ready.`
          : `${job.filename} could not be converted: ${job.error ? job.error.message : 'unknown reason'}`)
      }
    } catch (err) {
      if (err.status === 404) {
        following.delete(id)
        if (rows.has(id)) rows.get(id).drop()
      }
      // anything else (the network, a busy service): asked again on the next round
    }
  }
  pollTimer = session && following.size ? setTimeout(poll, POLL_MS) : null
}

async function download (row) {
  const button = row.part('.download')
  button.disabled = true
  try {
    // A short-lived link to this one MP3 (any size): the browser fetches it without the token.
    const link = await call('GET', `videos/${encodeURIComponent(row.key)}/mp3`)
    const a = document.createElement('a')
    a.href = link.url
    a.download = link.filename
    a.rel = 'noopener'
    a.hidden = true
    document.body.append(a)
    a.click()
    a.remove()
    notice(`Downloading ${link.filename} (${formatBytes(link.size)}).`)
  } catch (err) {
    notice(`${row.filename}: ${err.message}`)
  } finally {
    button.disabled = false
  }
}

async function remove (row) {
  if (row.failed) { // an upload the service refused: nothing of it is kept
    row.drop()
    return
  }
  if (!window.confirm(`Delete ${row.filename} and its MP3? This cannot be undone.`)) return
  try {
    await call('DELETE', `videos/${encodeURIComponent(row.key)}`)
  } catch (err) {
    if (err.status !== 404) {
      notice(`${row.filename} could not be deleted: ${err.message}`)
      return
    }
  }
  following.delete(row.key)
  row.drop()
  notice(`Deleted ${row.filename}.`)
}

// --- uploads (tus) --------------------------------------------------------------------------------

const idFromUrl = (address) => new URL(address, document.baseURI).pathname.split('/').filter(Boolean).pop()

// The same file, for the same user, is the same upload: what lets a reloaded page resume it.
const fingerprintPrefix = () => `vid2mp3/${session.id}/`
const fingerprint = (file) => Promise.resolve(
  `${fingerprintPrefix()}${[file.name, file.type, file.size, file.lastModified].join('/')}`)

function uploadError (err) {
  const response = err && err.originalResponse
  if (!response) return `${UNREACHABLE} Choose the same file again to continue where it stopped.`
  try {
    const body = JSON.parse(response.getBody())
    if (body && body.error && body.error.message) return body.error.message
  } catch {}
  return `The service answered ${response.getStatus()}.`
}

function startUpload (file) {
  const row = new Row(`local-${++localKeys}`, file.name, { first: true })
  row.showUpload(0, file.size)
  let jobUrl = null
  let resumedFrom = 0
  const upload = new tus.Upload(file, {
    endpoint: url('uploads'),
    chunkSize: PART_BYTES,
    retryDelays: RETRY_DELAYS,
    headers: { Authorization: `Bearer ${session.token}` },
    metadata: { filename: file.name, filetype: file.type || 'application/octet-stream', bitrate: $('bitrate').value },
    fingerprint,
    removeFingerprintOnSuccess: true,
    onUploadUrlAvailable () {
      row.rekey(idFromUrl(upload.url))
    },
    onAfterResponse (req, res) {
      jobUrl = res.getHeader('Vid2mp3-Job') || jobUrl
      if (req.getMethod() === 'HEAD' && res.getStatus() === 200) {
        resumedFrom = Number(res.getHeader('Upload-Offset')) || 0
        row.showUpload(resumedFrom, file.size, resumedFrom)
      }
    },
    onProgress (sent, total) {
      row.showUpload(sent, total, resumedFrom)
    },
    onSuccess () {
      row.upload = null
      showUnfinished()
      uploaded(row, idFromUrl(jobUrl || upload.url))
    },
    onError (err) {
      row.upload = null
      const response = err && err.originalResponse
      if (response && response.getStatus() === 401) {
        sessionEnded()
        return
      }
      row.show({ status: 'failed', text: `Upload failed: ${uploadError(err)}`, actions: ['delete'] })
      row.failed = true
      // Refused or gone (not a conflict that asking again would settle): nothing is left to resume.
      if (response && REFUSED.includes(response.getStatus()) && upload.url) forget(upload.url)
    }
  })
  row.upload = upload
  upload.findPreviousUploads().then((previous) => {
    if (previous.length) upload.resumeFromPreviousUpload(previous[0])
    if (row.upload === upload) upload.start()
    showUnfinished()
  })
}

async function uploaded (row, id) {
  row.rekey(id)
  row.show({ status: 'queued', text: 'Uploaded. Waiting to convert…', progress: null, label: 'Conversion', actions: [] })
  try {
    showJob(await call('GET', `videos/${encodeURIComponent(id)}`))
  } catch {
    follow(id) // asked again shortly
  }
}

// This browser's record of an upload (what resuming it needs), for one the service no longer has.
async function forget (uploadUrl) {
  const storage = tus.defaultOptions.urlStorage
  for (const entry of await storage.findAllUploads()) {
    if (entry.uploadUrl === uploadUrl) await storage.removeUpload(entry.urlStorageKey)
  }
}

function cancel (row) {
  const upload = row.upload
  row.upload = null
  if (upload) { // stop it, and remove what was sent
    upload.abort(true).catch(() => upload.url && forget(upload.url))
  }
  row.drop()
  notice(`Cancelled the upload of ${row.filename}.`)
}

function addFiles (files) {
  if (!session) return
  for (const file of files) startUpload(file)
}

// Uploads this browser started for this user and never finished (a closed tab, a reload, a lost
// connection): choosing the same file again continues each one.
async function showUnfinished () {
  const list = $('unfinished-list')
  if (!session) return
  const storage = tus.defaultOptions.urlStorage
  const running = new Set([...rows.values()].filter((r) => r.upload && r.upload.url).map((r) => r.upload.url))
  const prefix = `tus::${fingerprintPrefix()}`
  let entries = []
  try {
    entries = (await storage.findAllUploads()).filter((e) => e.urlStorageKey.startsWith(prefix) &&
      !running.has(e.uploadUrl))
  } catch {}
  list.replaceChildren()
  for (const entry of entries) {
    const item = $('unfinished-template').content.firstElementChild.cloneNode(true)
    const name = (entry.metadata && entry.metadata.filename) || 'a video'
    item.querySelector('.name').textContent = name
    item.querySelector('.facts').textContent = formatBytes(entry.size)
    const discard = item.querySelector('.discard')
    discard.setAttribute('aria-label', `Discard the unfinished upload of ${name}`)
    discard.addEventListener('click', async () => {
      try {
        await fetch(entry.uploadUrl, {
          method: 'DELETE',
          headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${session.token}` },
          credentials: 'omit'
        })
      } catch {}
      await storage.removeUpload(entry.urlStorageKey)
      showUnfinished()
    })
    list.append(item)
  }
  $('unfinished').hidden = entries.length === 0
}

// --- session ----------------------------------------------------------------------------------------

function saveSession () {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session))
}

async function startSession (token, expiresIn) {
  session = { token, id: null, email: null, expiresAt: Date.now() + expiresIn * 1000 }
  const me = await call('GET', 'auth/me')
  Object.assign(session, { id: me.id, email: me.email })
  saveSession()
  showConverter()
}

// Logged in: the converter and the account; logged out: the sign-in form.
function showView (loggedIn) {
  $('signin').hidden = loggedIn
  $('converter').hidden = !loggedIn
  $('account').hidden = !loggedIn
}

function showConverter () {
  showView(true)
  $('who').textContent = session.email
  nextCursor = null
  loadJobs()
  showUnfinished()
}

function endSession (message) {
  for (const row of rows.values()) {
    if (row.upload) row.upload.abort(false) // kept on the server: choosing the file again continues it
  }
  clearTimeout(pollTimer)
  pollTimer = null
  following.clear()
  rows.clear()
  $('jobs').replaceChildren()
  $('unfinished-list').replaceChildren()
  session = null
  sessionStorage.removeItem(SESSION_KEY)
  $('who').textContent = ''
  $('auth-form').reset() // the next person at this browser starts from an empty form
  showView(false)
  notice(message)
  $('email').focus()
}

function sessionEnded () {
  if (session) endSession('Your session has ended. Log in again; unfinished uploads continue when you choose the same files again.')
}

async function onAuth (event) {
  event.preventDefault()
  const register = event.submitter && event.submitter.value === 'register'
  const email = $('email').value.trim()
  const password = $('password').value
  const error = $('auth-error')
  error.textContent = ''
  if (!email || !password) {
    error.textContent = 'Enter your email address and a password.'
    return
  }
  const buttons = $('auth-form').querySelectorAll('button')
  buttons.forEach((b) => { b.disabled = true })
  try {
    if (register) await call('POST', 'auth/register', { body: { email, password }, auth: false })
    const login = await call('POST', 'auth/login', { body: { email, password }, auth: false })
    $('password').value = ''
    notice(register ? `Welcome! Your account ${email} is ready.` : '')
    await startSession(login.access_token, login.expires_in)
    $('choose').focus()
  } catch (err) {
    error.textContent = err.message
  } finally {
    buttons.forEach((b) => { b.disabled = false })
  }
}

async function resumeSession () {
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null')
  } catch {
    session = null
  }
  if (!session || !session.token || !session.id || session.expiresAt <= Date.now()) {
    session = null
    sessionStorage.removeItem(SESSION_KEY)
    showView(false)
    return
  }
  try {
    await call('GET', 'auth/me') // still valid?
    showConverter()
  } catch (err) {
    if (session) { // not a 401 (that ended it already): the service is away
      showConverter()
      notice(err.message)
    }
  }
}

// --- wiring -----------------------------------------------------------------------------------------

function wire () {
  $('auth-form').addEventListener('submit', onAuth)
  $('logout').addEventListener('click', () => endSession('You are logged out.'))
  $('more').addEventListener('click', loadJobs)
  $('choose').addEventListener('click', () => $('files').click())
  $('files').addEventListener('change', (event) => {
    addFiles(event.target.files)
    event.target.value = '' // the same file may be chosen again
  })
  const drop = $('drop')
  drop.addEventListener('dragover', (event) => {
    event.preventDefault()
    event.dataTransfer.dropEffect = 'copy'
    drop.classList.add('over')
  })
  drop.addEventListener('dragleave', (event) => {
    if (!drop.contains(event.relatedTarget)) drop.classList.remove('over')
  })
  drop.addEventListener('drop', (event) => {
    event.preventDefault()
    drop.classList.remove('over')
    addFiles(event.dataTransfer.files)
  })
  // A file dropped anywhere else must not make the browser leave the page to show it.
  window.addEventListener('dragover', (event) => event.preventDefault())
  window.addEventListener('drop', (event) => event.preventDefault())
}

if (!window.tus || !tus.isSupported) {
  notice('This browser cannot upload files with this page; please use a current browser.')
} else {
  wire()
  resumeSession()
}
