"""Pure codecs over bytes, no I/O: y-protocols messages, awareness payloads and Yjs
update inspection."""
