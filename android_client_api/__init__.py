"""The client side of fitwire's API: what the CLI, the Tracker and the agent share to talk to a webhook.

``fitwire.client_api.http`` holds the token rule, the retry policy and the error types of the
HTTP API (``docs/http-api.md``, ``/openapi.json``); ``fitwire.client_api.resources`` its routes as
typed calls answering the contract's entities (``FitwireApi``); the broker API's messages are the
contract's (``fitwire.contract.messages``).
"""
