-- Reference rows Faveo seeds on installation (status types, statuses,
-- sources, priorities, types; names, order and spelling as in Faveo's
-- seeders), plus the people and groups a test helpdesk needs. The ids are
-- exported as Go constants in seed.go: keep the two in step.

INSERT INTO ticket_status_type (id, name, created_at, updated_at) VALUES
    (1, 'open',       '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (2, 'closed',     '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (3, 'archieved',  '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (4, 'deleted',    '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (5, 'approval',   '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (6, 'spam',       '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (7, 'unapproved', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (8, 'merged',     '2022-03-22 11:13:00', '2022-03-22 11:13:00');

INSERT INTO ticket_status (id, name, message, created_at, updated_at, visibility_for_client, allow_client,
                           visibility_for_agent, purpose_of_status, send_email, halt_sla, "order", icon, icon_color,
                           "default", send_sms, auto_close, comment, under_deletion) VALUES
    (1, 'Open', 'Ticket has been Reopened by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 1,
        '{"client":"1","admin":"0","assigned_agent_team":"1"}', 0, 1, 'fa fa-clock-o', '#32c777', 1, 0, 1, 0, 0),
    (2, 'Resolved', 'Ticket has been Resolved by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 2,
        '{"client":"1","admin":"0","assigned_agent_team":"1"}', 1, 2, 'fa fa-check-circle-o', '#5cb85c', NULL, 0, NULL, 0, 0),
    (3, 'Closed', 'Ticket has been Closed by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 2,
        '{"client":"1","admin":"0","assigned_agent_team":"1"}', 1, 3, 'fa fa-minus-circle', '#5cb85c', 1, 0, NULL, 0, 0),
    (4, 'Deleted', 'Ticket has been Deleted by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 4,
        '{"client":"0","admin":"0","assigned_agent_team":"0"}', 1, 4, 'fa fa-trash', '#f20630', 1, 0, NULL, 0, 0),
    (5, 'Request for close', 'Approval requested by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 5,
        '{"client":"0","admin":"0","assigned_agent_team":"0"}', 1, 5, 'fa fa-bell', '#0665f2', 1, 0, NULL, 0, 0),
    (6, 'Spam', 'Ticket has been marked as Spam by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0, 0, 1, 6,
        '{"client":"0","admin":"0","assigned_agent_team":"0"}', 1, 6, 'glyphicon glyphicon-alert', '#f0ad4e', 1, 0, NULL, 0, 0),
    (7, 'Unapproved', 'Ticket has been marked as Unapproved by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0, 0, 1, 7,
        '{"client":"0","admin":"1","assigned_agent_team":"0"}', 1, 7, 'fa fa-clock-o', '#f20630', 1, 0, NULL, 0, 0),
    (8, 'Merged', 'Ticket have been marked as Merged by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0, 0, 1, 8,
        '{"client":"0","admin":"1","assigned_agent_team":"0"}', 1, 7, 'fa fa-clock-o', '#f20630', 1, 0, NULL, 0, 0),
    -- An administrator's own status, as in the ticket_department_updated
    -- example of Faveo's webhook documentation.
    (9, 'On hold', '<p>On hold</p>', '2022-06-16 07:56:15', '2022-06-16 07:56:15', 1, 1, 0, 1,
        NULL, 1, 12, 'fas fa-bullseye', '#000000', NULL, 0, NULL, 1, 0);

INSERT INTO ticket_source (id, name, value, css_class, created_at, updated_at) VALUES
    (1, 'web',      'Web',         'fa fa-globe',    '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (2, 'email',    'E-mail',      'fa fa-envelope', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (3, 'agent',    'Agent Panel', 'fa fa-user',     '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (4, 'facebook', 'Facebook',    'fa fa-facebook', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (5, 'twitter',  'Twitter',     'fa fa-twitter',  '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (6, 'call',     'Call',        'fa fa-phone',    '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (7, 'chat',     'Chat',        'fa fa-comment',  '2022-03-22 11:13:00', '2022-03-22 11:13:00');

INSERT INTO ticket_priority (priority_id, priority, status, user_priority, priority_desc, priority_color,
                             priority_urgency, ispublic, is_default, created_at, updated_at) VALUES
    (1, 'Low',       '1', '1', 'Low',       '#00a65a', 4, 1, '1', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (2, 'Normal',    '1', '1', 'Normal',    '#00bfef', 3, 1, '0', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (3, 'High',      '1', '1', 'High',      '#f39c11', 2, 1, '0', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (4, 'Emergency', '1', '1', 'Emergency', '#dd4b38', 1, 1, '0', '2022-03-22 11:13:00', '2022-03-22 11:13:00');

INSERT INTO ticket_type (id, name, status, type_desc, ispublic, is_default, created_at, updated_at) VALUES
    (1, 'Question',        1, 'Question',        1, 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (2, 'Incident',        1, 'Incident',        1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (3, 'Problem',         1, 'Problem',         1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (4, 'Feature Request', 1, 'Feature Request', 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00');

INSERT INTO department (id, name, type, sla, created_at, updated_at) VALUES
    (1, 'Support',   '1', 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (2, 'Sales',     '1', 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (3, 'Operation', '1', 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00');

INSERT INTO teams (id, name, status, team_lead, assign_alert, admin_notes, created_at, updated_at) VALUES
    (1, 'Level 1 Support', 1, 2, 1, '', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (2, 'Level 2 Support', 1, 3, 1, '', '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (3, 'Developer',       1, 4, 1, '', '2022-03-22 11:13:00', '2022-03-22 11:13:00');

INSERT INTO help_topic (id, topic, department, ticket_status, priority, sla_plan, ticket_num_format, status, type,
                        created_at, updated_at) VALUES
    (1, 'Support query',     1, 1, 2, 1, '1', 1, 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (2, 'Sales query',       2, 1, 2, 1, '1', 1, 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00'),
    (3, 'Operational query', 3, 1, 2, 1, '1', 1, 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00');

-- Passwords are bcrypt hashes of "password"; they must never reach a payload.
INSERT INTO users (id, user_name, first_name, last_name, email, password, active, is_delete, country_code, mobile,
                   agent_sign, account_type, account_status, primary_dpt, agent_tzone, daylight_save, limit_access,
                   directory_listing, vacation_mode, company, role, profile_pic, remember_token, created_at, updated_at,
                   email_verify, mobile_verify, hash_ids, is_2fa_enabled, google2fa_secret, is_login, phone_country_code) VALUES
    (1, 'admin', 'Ada', 'Admin', 'ada.admin@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', 1, '81', '', '', '', '',
        '', 'admin', '', 'rt-admin-secret', '2022-03-22 11:13:00', '2022-03-22 11:15:19', '1', '0', 'hash-admin', 0,
        'g2fa-admin-secret', 1, ''),
    (2, 'alice', 'Alice', 'Agent', 'alice.agent@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', 1, '81', '', '', '', '',
        '', 'agent', '', NULL, '2022-03-22 11:14:00', '2022-03-22 11:14:00', '1', '0', 'hash-alice', 0, NULL, 0, ''),
    (3, 'bob', 'Bob', 'Agent', 'bob.agent@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', 2, '81', '', '', '', '',
        '', 'agent', '', NULL, '2022-03-22 11:14:00', '2022-03-22 11:14:00', '1', '0', 'hash-bob', 0, NULL, 0, ''),
    (4, 'carol', 'Carol', 'Agent', 'carol.agent@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', 3, '81', '', '', '', '',
        '', 'agent', '', NULL, '2022-03-22 11:14:00', '2022-03-22 11:14:00', '1', '0', 'hash-carol', 0, NULL, 0, ''),
    (5, 'dave@customer.example', 'Dave', 'Client', 'dave@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', NULL, '', '', '', '', '',
        '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', '1', '0', 'hash-dave', 0, NULL, 0, ''),
    (6, 'erin@customer.example', 'Erin', 'Client', 'erin@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', NULL, '', '', '', '', '',
        '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', '0', '0', 'hash-erin', 0, NULL, 0, ''),
    (7, 'frank@customer.example', 'Frank', 'Client', 'frank@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', NULL, '', '', '', '', '',
        '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', 'verify-token-frank', '0', 'hash-frank', 0, NULL, 0, ''),
    (8, 'grace@customer.example', 'Grace', 'Client', 'grace@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', '', '', '', '', NULL, '', '', '', '', '',
        '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', '1', '1', 'hash-grace', 0, NULL, 0, '');

-- Later inserts without an explicit id continue after the seeded ones.
SELECT setval(pg_get_serial_sequence('ticket_status_type', 'id'), (SELECT max(id) FROM ticket_status_type));
SELECT setval(pg_get_serial_sequence('ticket_status', 'id'), (SELECT max(id) FROM ticket_status));
SELECT setval(pg_get_serial_sequence('ticket_source', 'id'), (SELECT max(id) FROM ticket_source));
SELECT setval(pg_get_serial_sequence('ticket_priority', 'priority_id'), (SELECT max(priority_id) FROM ticket_priority));
SELECT setval(pg_get_serial_sequence('ticket_type', 'id'), (SELECT max(id) FROM ticket_type));
SELECT setval(pg_get_serial_sequence('department', 'id'), (SELECT max(id) FROM department));
SELECT setval(pg_get_serial_sequence('teams', 'id'), (SELECT max(id) FROM teams));
SELECT setval(pg_get_serial_sequence('help_topic', 'id'), (SELECT max(id) FROM help_topic));
SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));
