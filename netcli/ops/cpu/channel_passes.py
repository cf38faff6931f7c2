"""BatchNorm's passes over a share's rows, as the share's thread calls them (layers/normalization.py,
exec/fusion.py): the kernel itself (channels.py, norm_scale_relu.py), or, where that thread leads a
team with helpers (exec/team.py), the same kernel in fixed tiles as a team job (channels_team.py).
The same bits either way: the choice is the thread count's, never the numbers'."""
from . import channels, channels_team, norm_scale_relu
from .team_call import team_call


def _moments(x, count, mean, m2):
    """channels.channel_moments through the part a tile runs (one kernel compiled for both ways)."""
    count[0] = x.shape[0] * x.shape[2]
    channels.channel_moments_part(x, mean, m2, 0, x.shape[1])


def _grad_sums(dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat):
    """norm_scale_relu_grad_sums through the part a tile runs."""
    norm_scale_relu.norm_scale_relu_grad_sums_part(dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy,
                                                   sum_dy_xhat, 0, dy.shape[1])


def channel_moments(x, count, mean, m2):
    """channels.channel_moments, its channels in tiles where there are helpers."""
    team_call(channels_team.moments_job, _moments, x, count, mean, m2)


def norm_scale_relu_forward(x, a, b, gamma, beta, k, relu, y, xhat, pos):
    """norm_scale_relu.norm_scale_relu_forward, its images in tiles where there are helpers."""
    team_call(channels_team.forward_job, norm_scale_relu.norm_scale_relu_forward, x, a, b, gamma, beta, k, relu, y,
              xhat, pos)


def norm_scale_relu_grad_sums(dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat):
    """norm_scale_relu.norm_scale_relu_grad_sums, its channels in tiles where there are helpers."""
    team_call(channels_team.sums_job, _grad_sums, dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat)


def norm_scale_relu_backward(dy, xhat, gamma, beta, mean_dy, mean_dy_xhat, inv_std, k, relu, dx):
    """norm_scale_relu.norm_scale_relu_backward, its images in tiles where there are helpers."""
    team_call(channels_team.backward_job, norm_scale_relu.norm_scale_relu_backward, dy, xhat, gamma, beta, mean_dy,
              mean_dy_xhat, inv_std, k, relu, dx)
