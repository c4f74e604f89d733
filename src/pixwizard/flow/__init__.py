"""Flow matching: the time convention, time sampling, loss, condition dropout, guidance and samplers
as pure functions outside the network."""

from pixwizard.flow.dropout import apply_dropout, draw_dropout
from pixwizard.flow.guidance import combine, needed_branches
from pixwizard.flow.loss import change_weights, flow_loss
from pixwizard.flow.noise import item_generators, noise_like
from pixwizard.flow.path import (SAMPLING_T_EPS, interpolate, sampling_velocity, target_velocity, to_velocity,
                                 training_target, velocity_from_x, x_from_velocity)
from pixwizard.flow.samplers import euler, get_sampler, heun
from pixwizard.flow.timesteps import sample_training_times, sampler_times, shift_time, time_grid

__all__ = [
    "apply_dropout", "change_weights", "draw_dropout", "combine", "needed_branches", "flow_loss", "item_generators", "noise_like",
    "SAMPLING_T_EPS", "interpolate", "sampling_velocity", "target_velocity", "to_velocity", "training_target",
    "velocity_from_x", "x_from_velocity", "euler", "get_sampler", "heun", "sample_training_times", "sampler_times", "shift_time",
    "time_grid",
]
