"""Pure codecs over bytes, no I/O: y-protocols messages, awareness payloads, Yjs update
inspection, RFC 6455 frames and problem+json bodies."""
