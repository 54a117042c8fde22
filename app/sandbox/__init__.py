"""Signature-checking stand-ins for the payment and VOD providers, served on 127.0.0.1."""
