"""Receivers we do not control, played on 127.0.0.1: the spec's Python and Node.js examples, a
scripted misbehaving server, and a tiny forward proxy."""
