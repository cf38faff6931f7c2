"""BatchNorm's passes over a share's rows, as the share's thread calls them (layers/normalization.py,
exec/fusion.py): the kernel itself (channels.py, norm_scale_relu.py), or, where that thread leads a
team with helpers (exec/team.py), the same kernel in fixed tiles as a team job (channels_team.py).
The same bits either way: the choice is the thread count's, never the numbers'."""
from ...exec.team import with_helpers
from . import channels, channels_team, norm_scale_relu
from .team_jobs import run_job


def channel_moments(x, count, mean, m2):
    """channels.channel_moments, its channels in tiles where there are helpers."""
    team = with_helpers(x, mean, m2)
    if team is None:          # (the part a tile runs: one kernel compiled for both ways)
        count[0] = x.shape[0] * x.shape[2]
        channels.channel_moments_part(x, mean, m2, 0, x.shape[1])
        return
    channels_team.moments_job(team.record, x, count, mean, m2)
    run_job(team, x.reshape(-1)[:0])


def norm_scale_relu_forward(x, a, b, gamma, beta, k, relu, y, xhat, pos):
    """norm_scale_relu.norm_scale_relu_forward, its images in tiles where there are helpers."""
    team = with_helpers(x, a, b, gamma, beta, k, y, xhat, pos)
    if team is None:
        norm_scale_relu.norm_scale_relu_forward(x, a, b, gamma, beta, k, relu, y, xhat, pos)
        return
    channels_team.forward_job(team.record, x, a, b, gamma, beta, k, relu, y, xhat, pos)
    run_job(team, x.reshape(-1)[:0])


def norm_scale_relu_grad_sums(dy, y, xhat, gamma, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat):
    """norm_scale_relu.norm_scale_relu_grad_sums, its channels in tiles where there are helpers."""
    team = with_helpers(dy, y, xhat, gamma, k, dgamma, dbeta, sum_dy, sum_dy_xhat)
    if team is None:
        norm_scale_relu.norm_scale_relu_grad_sums_part(dy, y, xhat, gamma, k, relu, dgamma, dbeta, sum_dy,
                                                       sum_dy_xhat, 0, dy.shape[1])
        return
    channels_team.sums_job(team.record, dy, y, xhat, gamma, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat)
    run_job(team, dy.reshape(-1)[:0])


def norm_scale_relu_backward(dy, y, xhat, gamma, mean_dy, mean_dy_xhat, inv_std, k, relu, dx):
    """norm_scale_relu.norm_scale_relu_backward, its images in tiles where there are helpers."""
    team = with_helpers(dy, y, xhat, gamma, mean_dy, mean_dy_xhat, inv_std, k, dx)
    if team is None:
        norm_scale_relu.norm_scale_relu_backward(dy, y, xhat, gamma, mean_dy, mean_dy_xhat, inv_std, k, relu, dx)
        return
    channels_team.backward_job(team.record, dy, y, xhat, gamma, mean_dy, mean_dy_xhat, inv_std, k, relu, dx)
    run_job(team, dy.reshape(-1)[:0])
