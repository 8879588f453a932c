"""The host side of a maskprop board: the link's wire format (:mod:`.protocol`)."""
