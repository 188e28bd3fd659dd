from ecrm_collector.surveys import form_to_response, response_events


def test_answers_become_survey_and_nps_events() -> None:
    body = {"userId": "u1", "answers": [{"question_id": "fit", "answer": "true to size"},
                                        {"question_id": "nps", "score": 9, "text": "fast"}]}  # fmt: skip
    survey, nps = response_events("post-purchase", body)
    fit = {"survey_id": "post-purchase", "question_id": "fit", "answer": "true to size"}
    assert survey == {"type": "track", "event": "Survey Answered", "userId": "u1", "properties": fit}
    assert nps["event"] == "NPS Answered"
    assert nps["properties"] == {"survey_id": "post-purchase", "question_id": "nps", "score": 9, "comment": "fast"}


def test_html_form_fields_map_to_answers() -> None:
    fields = [("writeKey", "k"), ("anonymousId", "a1"), ("q_fit", "small"), ("nps_nps", "10"), ("text_nps", "great")]
    body = form_to_response(fields)
    assert body == {"anonymousId": "a1", "answers": [{"question_id": "fit", "answer": "small"},
                                                     {"question_id": "nps", "score": 10, "text": "great"}]}  # fmt: skip
    assert [e["event"] for e in response_events("s", body)] == ["Survey Answered", "NPS Answered"]


def test_non_numeric_score_is_kept_for_validation_to_refuse() -> None:
    assert form_to_response([("nps_nps", "ten")])["answers"] == [{"question_id": "nps", "score": "ten"}]
