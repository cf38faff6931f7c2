"""SolverParameter: Caffe's fields and defaults, plus epoch-based lengths and intervals."""
from ..config.net_spec import NET_STATE
from ..config.schema import Field, Message, non_negative, positive
from ..update_rules import NAMES, TYPES, solver_fields

LR_POLICIES = ("FIXED", "STEP", "EXP", "INV", "MULTISTEP", "POLY", "SIGMOID", "PLATEAU")


def _positive_or_minus_one(v):
    return None if v > 0 or v == -1 else f"must be > 0 (or -1), got {v}"


MONITOR = [
    Field("monitor", "str", None, "a test net output, e.g. accuracy or loss", number=1),
    Field("mode", ("MIN", "MAX", "AUTO"), "AUTO", "improvement is a decrease (MIN) or increase (MAX); "
          "AUTO: MAX for accuracy/precision/recall/f1, else MIN", number=2),
    Field("patience", "int", 5, "tests without improvement before acting", check=positive, number=3),
    Field("min_delta", "float", 0.0, "smallest change that counts as an improvement", check=non_negative, number=4),
]
EARLY_STOPPING = Message("EarlyStopping", MONITOR, doc="Stop when a test output stops improving; keep the best weights.")
PLATEAU = Message("Plateau", MONITOR, doc="lr_policy plateau: multiply the rate by gamma when a test output stalls.")
SNAPSHOT_BEST = Message("SnapshotBest", [MONITOR[0], MONITOR[1], MONITOR[3]], doc="Keep <prefix>_best.weights.npz: the weights of the best test.")

SOLVER = Message("SolverParameter", [
    Field("net", "str", None, "the net file (TRAIN and TEST phases), relative to this solver file", number=24),
    Field("net_param", "tree", None, "the net itself, written inside the solver file (instead of net)", number=25),
    Field("train_net", "str", None, "a net file for training only (then test_net gives the test nets)", number=1),
    Field("train_net_param", "tree", None, "the training net written inside the solver file", number=21),
    Field("test_net", "str", None, "net files for testing, one test net each", repeated=True, number=2),
    Field("test_net_param", "tree", None, "test nets written inside the solver file", repeated=True, number=22),
    Field("train_state", NET_STATE, None, "stages and level of the TRAIN net: {stage: [...], level: N}", number=26),
    Field("test_state", NET_STATE, None, "stages and level of each test net built from net/net_param "
          "(one per test net, after those of test_net_param and test_net)", repeated=True, number=27),
    Field("test_iter", "int", None, "batches per test pass, one value per test net (default: each test "
          "net's whole data once)", repeated=True, check=positive, number=3),
    Field("test_interval", "int", 0, "test every this many iterations (0: never)", check=non_negative, number=4),
    Field("test_interval_epochs", "float", None, "test every this many epochs of the TRAIN data", check=positive, number=10001),
    Field("test_initialization", "bool", True, "also test before the first iteration", number=32),
    Field("test_compute_loss", "bool", False, "accepted for compatibility; test losses are always shown", number=19),
    Field("base_lr", "float", 0.0, "base learning rate", check=non_negative, number=5),
    Field("display", "int", 0, "log the loss every this many iterations (0: never)", check=non_negative, number=6),
    Field("average_loss", "int", 1, "the displayed loss is averaged over this many iterations", check=positive, number=33),
    Field("max_iter", "int", None, "iterations to train", check=non_negative, number=7),
    Field("max_epochs", "float", None, "epochs of the TRAIN data to train (instead of max_iter)", check=positive, number=10002),
    Field("iter_size", "int", 1, "accumulate gradients over this many batches per update", check=positive, number=36),
    Field("lr_policy", tuple(p.lower() for p in LR_POLICIES), "fixed",
          "learning-rate policy: fixed, step, exp, inv, multistep, poly, sigmoid, plateau", number=8,
          proto={"type": "string", "default": ""}),
    Field("plateau", PLATEAU, None, "lr_policy plateau: {monitor, mode, patience, min_delta}; the factor is gamma", number=10003),
    Field("early_stopping", EARLY_STOPPING, None, "{monitor, mode, patience, min_delta}: stop when the monitored "
          "test output stops improving; the best weights go to <prefix>_best.weights.npz and are restored "
          "when it stops", number=10004),
    Field("gamma", "float", 0.0, "step/exp/inv/multistep/sigmoid parameter", number=9),
    Field("power", "float", 0.0, "inv/poly exponent", number=10),
    Field("stepsize", "int", 0, "step: iterations per step; sigmoid: centre", check=non_negative, number=13),
    Field("stepvalue", "int", None, "multistep: iterations at which the rate is multiplied by gamma",
          repeated=True, check=positive, number=34),
    Field("momentum", "float", 0.0, "momentum (Adam: beta1; AdaDelta: decay)", number=11),
    *solver_fields(),
    Field("weight_decay", "float", 0.0, "weight decay (regularisation strength)", check=non_negative, number=12),
    Field("regularization_type", ("L2", "L1"), "L2", "weight decay on the squared (L2) or absolute (L1) weights", number=29,
          proto={"type": "string"}),
    Field("clip_gradients", "float", -1.0, "scale gradients down to this global L2 norm (< 0: off)", number=35),
    Field("snapshot", "int", 0, "snapshot every this many iterations (0: only at the end)", check=non_negative, number=14),
    Field("snapshot_epochs", "float", None, "snapshot every this many epochs", check=positive, number=10005),
    Field("snapshot_prefix", "str", None, "snapshot path prefix, relative to the working directory as in Caffe "
          "(net: is relative to the solver file); default snapshots/<solver file name>", number=15),
    Field("snapshot_keep", "int", 0, "keep only the newest this many snapshot pairs of this prefix (0: all)",
          check=non_negative, number=10006),
    Field("snapshot_best", SNAPSHOT_BEST, None, "{monitor, mode}: after each test that improves on the best, "
          "write <prefix>_best.weights.npz (with or without early_stopping)", number=10007),
    Field("snapshot_after_train", "bool", True, "write a snapshot when training ends", number=28),
    Field("snapshot_format", ("HDF5", "BINARYPROTO"), None, "BINARYPROTO: also write <prefix>_iter_N.caffemodel "
          "(Caffe's weights) next to each .weights.npz; HDF5: the .npz files alone (they hold what Caffe's "
          ".caffemodel.h5 and .solverstate.h5 held: named arrays)", number=37,
          proto={"default": "BINARYPROTO"}),
    Field("snapshot_diff", "bool", False, "accepted for prototxt compatibility (gradients are not snapshotted)", number=16),
    Field("debug_info", "bool", False, "accepted for prototxt compatibility", number=23),
    Field("layer_wise_reduce", "bool", True, "accepted for prototxt compatibility", number=41),
    Field("random_seed", "int", -1, "seed for fillers, dropout and data shuffling (-1: from the clock)",
          range=(-1, 2 ** 63 - 1), number=20),
    Field("type", TYPES, "SGD", "update rule: " + ", ".join(NAMES.values()), number=40, proto={"type": "string"}),
    Field("solver_mode", ("CPU", "GPU"), "CPU", "accepted for prototxt compatibility; netcli runs on the CPU", number=17,
          proto={"default": "GPU"}),
    Field("device_id", "int", 0, "accepted for prototxt compatibility", check=non_negative, number=18),
    Field("weights", "str", None, "weights to fine-tune from (comma-separated), as --weights", repeated=True, number=42),
], doc="How a net is trained.")
