// The RSVP page's service worker: keeps the page's own files (scope /rsvp/) so it opens with
// no network; the household's answers wait in the page's storage (rsvp: keys), never here.
// The list of files and the version are filled in by web/build.mjs.
const VERSION = 'a6f8bbe431e7ad57'
const SHELL = ["/rsvp/","/rsvp/rsvp-42QC2C77.js","/rsvp/rsvp-LCWWR2IZ.css"]
const CACHE = `rsvp-${VERSION}`

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('rsvp-') && name !== CACHE) await caches.delete(name)
    }
    await self.clients.claim()
  })())
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  const url = new URL(request.url)
  if (request.method !== 'GET' || url.origin !== location.origin || !url.pathname.startsWith('/rsvp/')) return
  event.respondWith((async () => {
    const cache = await caches.open(CACHE)
    try {
      const response = await fetch(request)
      if (response.ok && SHELL.includes(url.pathname)) await cache.put(request, response.clone())
      return response
    } catch (error) {
      const kept = await cache.match(request.mode === 'navigate' ? '/rsvp/' : request, { ignoreSearch: true })
      if (kept) return kept
      throw error
    }
  })())
})
