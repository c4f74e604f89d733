"""The procedural 3D world (pybullet TinyRenderer, CPU): scene graphs, renders with exact depth,
normals, instance/semantic ids and boxes, referring expressions, captions, counterfactual edits and
the world task generators.

Modules: ``scene`` (scene graph + sampler), ``assets`` (generated meshes and textures, disk cache),
``render`` (``render_scene``), ``language`` (``refer``, ``evaluate``, ``parse``, ``caption``),
``edits`` (``EDITS``, ``changed_region``), ``generators`` (``WORLD_GENERATORS``).
Import the submodules directly; this package does not import pybullet by itself.
"""
