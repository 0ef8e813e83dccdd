"""Empirical risk minimisation over pooled source domains: the domain-generalisation baseline
that DomainBed (Gulrajani & Lopez-Paz, "In Search of Lost Domain Generalization", ICLR 2021)
found hard to beat."""

from __future__ import annotations

from lepton_cli.methods.source_only import SourceOnly


class ERM(SourceOnly):
    """Cross-entropy on the pooled labelled sources (with `source=multi`, batches hold the same
    number of images of each source domain); the target is never read in training. The same
    step as `source_only`, named for domain generalisation."""
