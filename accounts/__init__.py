"""Accounts, roles, scopes, audit and personal data: the rules of who may see and do what."""
