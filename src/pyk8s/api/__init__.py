"""API machinery: the pure library every other package builds on.

Resource catalogue (`resources`), Status errors (`errors`), defaulting (`defaults`),
validation (`validation`), quantities (`quantity`), label and field selectors
(`selectors`), patches (`patch`), server-side table printing (`tables`) and the protobuf
request decoder (`protobuf`). No I/O and no asyncio here: objects are plain JSON dicts in,
plain JSON dicts out, and everything is unit-tested on its own.
"""
