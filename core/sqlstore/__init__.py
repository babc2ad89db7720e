"""The SQL stores written once: a SQL backend supplies only its database and dialect.

:class:`conveyor.sqlstore.metadata.SQLMetadataStore` and
:class:`conveyor.sqlstore.registry.SQLRegistryBackend` hold every statement the
bundled SQLite and the PostgreSQL backends share, with ``?`` placeholders.  A
backend subclasses them and, in its constructor, sets ``self.sql`` (its
:class:`~conveyor.sqlstore.dialect.Transactions`: write / snapshot / reading)
and ``self.dialect`` (a :class:`~conveyor.sqlstore.dialect.Dialect`: times,
insertion order, row locks and the few statements with no common spelling).
Its own migrations create the tables; ``docs/plugins/sql-backends.md`` lists them.

Nothing here imports a plugin or a database driver beyond the standard library.
"""
