"""What varcas's two servers share: the streaming stub (varcas.testing) and the simulator (varcas.sim).

http11 (HTTP/1.1 request parsing, response framing), openai_wire (vLLM's OpenAI request checks
and response bytes), protocol (the per-connection request loop and the listening socket) and
spawn (running a server in a subprocess). One copy of each, so the load generator meets the
same bytes and the same behaviour from either server; each server adds only its own timing.
"""
