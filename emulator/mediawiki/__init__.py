"""A MediaWiki-compatible stand-in for Wikipedia's Action API, serving a small fixture set."""

from emulator.mediawiki.server import MediaWikiServer, WikiPage, WikiRequest, load_fixtures

__all__ = ["MediaWikiServer", "WikiPage", "WikiRequest", "load_fixtures"]
