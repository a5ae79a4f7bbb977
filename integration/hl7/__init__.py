"""The HL7 v2 adapter: framing/decoding (``codec``), inbound handlers (``inbound``), message
builders (``build``), the MLLP server (``server``) and client (``client``). Parsing, escaping
and ACK construction use python-hl7 (``hl7``); see docs/integration.md for why."""
