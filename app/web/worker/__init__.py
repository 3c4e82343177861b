"""The worker's pages: join (scan → form → SMS code → pending), status (phone → code → status,
withdraw) and the human check between a form and its SMS. Work without JavaScript.

Architecture
------------
* `join`, `status`, `challenge`: thin views, the same steps in each: parse the form, call a
  service, commit, redirect. The blueprints keep their names ("join", "status", "challenge"),
  so every endpoint and URL is as before.
* `forms`: the WTForms of these pages; `messages`: their message tables and the platform labels
  (the roster reads `PLATFORM_LABELS` from here); `flow`: what the views share (the phone-proof
  service, the client's address, the words for a refusal, Retry-After).
* app/services/phone_proof.py (`app.extensions["phone_proof"]`, built once with the app's one
  `Limits`): the human-check decision, the limits of a send, issuing a code on a `CodeState`
  owner (JoinAttempt or StatusCheck), and delivery.
* Side effects run after the commit through app/services/events.py: issuing a code records a
  `CodeRequested` event; its handler queues a join code as a durable task (app/services/tasks.py;
  a failure is written to the attempt) and sends a status code at once. The views never send a text themselves.
* The code steps answer with post/redirect/get (`flow.code_refused`: the words ride in the session
  and the code page shows them once); "wrong number?" (`join.change`) refills the form from the
  draft row; a page answering a post gives base.html `lang_next`, its step's GET, for the switch.
* Nothing about a phone's history shows before its owner proved it: a code that could not be
  sent reads the same whatever the reason (`messages.send_failure`; an opted-out number too).
"""
