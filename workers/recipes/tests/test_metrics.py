from forgeline_recipes.metrics import METRICS, bootstrap_ci, exact_match, paired_bootstrap_delta, token_f1


def test_registry_has_the_task_metrics():
    assert {"exact_match", "token_f1"} <= set(METRICS)


def test_exact_match_ignores_surrounding_whitespace_only():
    assert exact_match(" a b ", "a b") == 1.0
    assert exact_match("a b", "b a") == 0.0


def test_token_f1_edge_cases():
    assert token_f1("", "") == 1.0
    assert token_f1("a", "") == 0.0
    assert token_f1("a b", "b a") == 1.0
    assert abs(token_f1("a b c", "a") - 0.5) < 1e-12  # p=1/3, r=1


def test_bootstrap_ci_contains_the_mean_and_is_seeded():
    values = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    lo, hi = bootstrap_ci(values, seed=0)
    assert lo <= sum(values) / len(values) <= hi
    assert (lo, hi) == bootstrap_ci(values, seed=0)


def test_paired_delta():
    d, (lo, hi) = paired_bootstrap_delta([1, 1, 1, 0], [0, 0, 1, 0], seed=1)
    assert d == 0.5 and lo <= d <= hi
