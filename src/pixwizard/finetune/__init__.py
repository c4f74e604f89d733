"""Fine-tuning PixWizard on a user's own pairs: a new task or look from a few hundred examples.

- ``config``: typed configs (``FinetuneConfig``, ``NewTaskConfig``);
- ``pairs``: finding pairs in a folder or a JSONL manifest, the data checker, the held-out split;
- ``tasks``: registering a new task id from its small config (routing and typed outputs know it);
- ``adapters``: LoRA through peft, adapter files (safetensors), loading several by name, merging;
- ``loop``: the resumable training loop (LoRA or full), reusing ``pixwizard.train``'s pieces;
- ``evaluate`` / ``report``: before/after scores on the held-out pairs, forgetting on the quick suite,
  the table and the before/after sheet written next to the adapter.
"""
