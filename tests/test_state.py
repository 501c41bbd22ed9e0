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
        "paper": ["a\x00b"], "similar": ["2401.00001"],
    })
    assert state == ViewState(query="many spaces", categories=("cs.CL",), similar="2401.00001")
    assert ViewState.from_params({"page": ["999"]}).page == MAX_PAGE
    assert ViewState.from_params({"page": ["two"]}).page == 1


def test_filters_and_pages():
    state = ViewState(since="2025-01-01", categories=("cs.CV",))
    assert state.filters.active and state.filters.categories == ("cs.CV",)
    assert not ViewState(query="x").filters.active
    assert [page_count(n) for n in (0, 1, 20, 21, 100)] == [1, 1, 1, 2, 5]


def test_explore_list_and_like_views_round_trip():
    state = ViewState(view="explore", cluster=3, query="sparse attention")
    assert state.to_params() == {"q": "sparse attention", "view": "explore", "cluster": "3"}
    assert ViewState.from_params(params_of(state)) == state
    state = ViewState(view="lists", list="Thesis: chapter 2")
    assert ViewState.from_params(params_of(state)) == state
    state = ViewState(view="more", like=("2401.00001", "2401.00002"), unlike=("2401.00003",))
    assert state.to_params()["like"] == ["2401.00001", "2401.00002"]
    assert ViewState.from_params(params_of(state)) == state


def test_malformed_explore_values_are_dropped():
    state = ViewState.from_params({
        "view": ["admin"], "cluster": ["-1"], "list": ["x" * 500],
        "like": ["2401.00001", "a\nb", "2401.00001"], "unlike": ["2401.00001", "2401.00009"],
    })
    assert state.view == "search" and state.cluster == -1 and len(state.list) == 80
    assert state.like == ("2401.00001",)
    assert state.unlike == ("2401.00009",)  # a paper cannot be both
    assert ViewState.from_params({"cluster": ["99999"]}).cluster == -1
    assert len(ViewState.from_params({"like": [f"2401.{i:05d}" for i in range(80)]}).like) == 50


def test_url_dates_go_through_the_shared_strict_parser():
    for bad in ("2025-W01-1", "20250101", "2025-01-01T00:00", "2024-02-30", "٢٠٢٥-٠١-٠١"):
        assert ViewState.from_params({"since": [bad], "until": [bad]}).since == ""
    assert ViewState.from_params({"since": ["2024-02-29"]}).since == "2024-02-29"


def test_since_after_until_is_one_line_in_the_app():
    assert ViewState(since="2025-01-01", until="2025-01-01").date_problem == ""
    assert ViewState(since="2025-01-01").date_problem == ""
    problem = ViewState(since="2025-02-01", until="2025-01-01").date_problem
    assert "2025-02-01 is after" in problem and "\n" not in problem


def test_the_app_shows_the_date_problem_and_keeps_the_widgets(tmp_path):
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from ui.components import view

        view()
        st.date_input("since", key="w_since", value=None)
        st.date_input("until", key="w_until", value=None)

    at = AppTest.from_function(page)
    at.query_params["since"], at.query_params["until"] = "2025-02-01", "2025-01-01"
    at.run()
    assert not at.exception
    assert [w.value for w in at.warning] == [ViewState(since="2025-02-01",
                                                       until="2025-01-01").date_problem]
    assert str(at.date_input(key="w_since").value) == "2025-02-01"
