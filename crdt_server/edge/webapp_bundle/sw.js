// The service worker of the planner: keeps the app shell on the device so the app opens
// with no network. The documents themselves live in IndexedDB (y-indexeddb), not here.
// The list of files and the version below are filled in by web/build.mjs.
const VERSION = 'ad793da9518c6637'
const SHELL = ["/app/","/app/app-2TIXN3NX.js","/app/app-NO5Q7CNF.css","/app/chunk-37EYT3TU.js","/app/chunk-AMGDTSUC.js","/app/chunk-HNLH5YLR.js","/app/chunk-LY2HTBXW.js","/app/chunk-NV3QKEQR.js","/app/chunk-QHUEASRW.js","/app/chunk-QIV7PWUC.js","/app/chunk-X5YW32EU.js","/app/chunk-XYIGDLPA.js","/app/chunk-YAQT6TOX.js","/app/chunk-ZOVZW5YI.js","/app/icon.svg","/app/index.html","/app/manifest.webmanifest"]
const CACHE = `planner-${VERSION}`

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('planner-') && name !== CACHE) await caches.delete(name)
    }
    await self.clients.claim()
  })())
})

// The app's own pages (the server serves the same page for each): a navigation to one is
// answered from the cache at once, so a repeat visit waits for no round trip before the app
// starts. A new release still arrives: the browser checks this worker on every navigation,
// and a changed one (its VERSION hashes every file) installs the new shell, used from the
// next load on.
const PAGES = new Set(['/app/', '/app/sign-in', '/app/invite', '/app/new'])

self.addEventListener('fetch', (event) => {
  const request = event.request
  const url = new URL(request.url)
  // Only the app's own files: API calls and the sync socket always go to the network.
  if (request.method !== 'GET' || url.origin !== location.origin || !url.pathname.startsWith('/app/')) return
  const hashed = /-[A-Z0-9]{8,}\.(js|css)$/.test(url.pathname)
  const page = request.mode === 'navigate' && PAGES.has(url.pathname)
  event.respondWith((async () => {
    const cache = await caches.open(CACHE)
    if (hashed || page) {
      // A hashed file never changes, and the page is this version's: the cache is right.
      const kept = await cache.match(page ? '/app/' : request)
      if (kept) return kept
    }
    try {
      const response = await fetch(request)
      if (response.ok && SHELL.includes(url.pathname)) await cache.put(request, response.clone())
      return response
    } catch (error) {
      const kept = await cache.match(request.mode === 'navigate' ? '/app/' : request, { ignoreSearch: true })
      if (kept) return kept
      throw error
    }
  })())
})

// Web Push: each push message (a mention, an urgent message, an emergency, a reminder of a
// task or payment overdue, due today or soon; encrypted by the server, decrypted by the
// browser) becomes a notification. The payload names its wedding,
// type, title, the start of a body, the app URL to open and a tag: a notification with the
// same tag replaces the earlier one (repeats collapse). An emergency stays until it is
// dismissed. A payload that is not ours still shows something: the browser requires a
// notification for every push (userVisibleOnly).
const TEXT = (value, most) => (typeof value === 'string' ? value.slice(0, most) : '')

/** The app URL a notification opens: only this origin's /app/ pages. */
function appUrl (value) {
  try {
    const url = new URL(TEXT(value, 2048) || '/app/', location.origin)
    if (url.origin === location.origin && url.pathname.startsWith('/app/')) return url.href
  } catch {}
  return new URL('/app/', location.origin).href
}

self.addEventListener('push', (event) => {
  let data = {}
  try { data = event.data ? event.data.json() : {} } catch { data = {} }
  if (!data || typeof data !== 'object') data = {}
  const emergency = data.type === 'emergency'
  const title = TEXT(data.title, 200) || 'Wedding planner'
  const options = {
    body: TEXT(data.body, 200),
    tag: TEXT(data.tag, 200) || undefined,
    renotify: Boolean(data.tag),
    requireInteraction: emergency,
    data: { url: appUrl(data.url), wedding: TEXT(data.wedding, 64), type: TEXT(data.type, 40) }
  }
  event.waitUntil(self.registration.showNotification(title, options))
})

self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  const url = appUrl(event.notification.data && event.notification.data.url)
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true })
    for (const client of open) {
      if (new URL(client.url).pathname.startsWith('/app/') && 'navigate' in client) {
        await client.focus()
        return client.navigate(url)
      }
    }
    return self.clients.openWindow(url)
  })())
})
