"""Public-dataset adapters that read datasets in their native published layouts.

``open_source(name, root, split, **options)`` returns a ``Source`` (sized, indexable, iterable)
of ``pixwizard.data.sample.Sample`` records with canonical task ids; ``SOURCES`` lists the
adapters. A corrupt item raises ``CorruptSourceError`` when loaded (skip and count it); a missing
root or unrecognised layout raises ``SourceLayoutError`` when the source is opened.
"""

from pixwizard.data.sources.base import CorruptSourceError, IndexedSource, Source, SourceLayoutError
from pixwizard.data.sources.registry import DEFAULT_SPLITS, SOURCES, open_source, source_names

__all__ = ["CorruptSourceError", "DEFAULT_SPLITS", "IndexedSource", "SOURCES", "Source", "SourceLayoutError",
           "open_source", "source_names"]
