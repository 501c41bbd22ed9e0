from ui.state import MAX_PAGE, ViewState, page_count


def params_of(state: ViewState) -> dict[str, list[str]]:
    """What st.query_params hands back: every value as a list of strings."""
    return {k: v if isinstance(v, list) else [v] for k, v in state.to_params().items()}


def test_default_state_has_an_empty_url():
    assert ViewState().to_params() == {}
    assert ViewState.from_params({}) == ViewState()


def test_round_trip():
    state = ViewState(query="graph neural networks", since="2025-01-01", until="2025-12-31",
                      categories=("cs.LG", "cs.CL"), author="Bengio", sort="newest", page=3,
                      paper="2505.13738", similar="")
    assert state.to_params()["cat"] == ["cs.LG", "cs.CL"]
    assert ViewState.from_params(params_of(state)) == state


def test_malformed_values_are_dropped_not_errors():
    state = ViewState.from_params({
        "q": ["  many   spaces "], "since": ["2025-13-40"], "until": ["yesterday"],
        "cat": ["cs.CL", "<script>", "cs.CL"], "sort": ["best"], "page": ["-2"],
        "paper": ["<img src=x>"], "similar": ["2401.00001"],
    })
    assert state == ViewState(query="many spaces", categories=("cs.CL",), similar="2401.00001")
    assert ViewState.from_params({"page": ["999"]}).page == MAX_PAGE
    assert ViewState.from_params({"page": ["two"]}).page == 1


def test_filters_and_pages():
    state = ViewState(since="2025-01-01", categories=("cs.CV",))
    assert state.filters.active and state.filters.categories == ("cs.CV",)
    assert not ViewState(query="x").filters.active
    assert [page_count(n) for n in (0, 1, 20, 21, 100)] == [1, 1, 1, 2, 5]
