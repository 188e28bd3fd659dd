"""What the API's routes do beyond one storage call: each a function of the request's session
(and the store's shared reads), beside the pure step it feeds (``engine/``)."""
