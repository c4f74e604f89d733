"""The released PixWizard checkpoint: conversion (``convert``) and its inference preset
(``pipeline``). See docs/official-checkpoint.md."""
