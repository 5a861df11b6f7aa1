-- The rows seed.sql gives the PostgreSQL test database, for Faveo v9's
-- MySQL tables: the same ids, names and values wherever a column exists in
-- both. Columns only v9 has take Faveo's defaults (NULL, 0 or ''); columns
-- only the older Faveo had (department.sla, help_topic.priority,
-- users.hash_ids and is_login, ...) are left out. Users' mobile is NULL,
-- not '': Faveo v9 keeps it unique. The ids are exported as Go constants
-- in seed.go: keep the three in step.

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
                           visibility_for_agent, purpose_of_status, secondary_status, send_email, halt_sla, `order`,
                           icon, icon_color, `default`, send_sms, auto_close, comment, under_deletion,
                           rating_auto_request) VALUES
    (1, 'Open', 'Ticket has been Reopened by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 1, NULL,
        '{"client":"1","admin":"0","assigned_agent_team":"1"}', 0, 1, 'fa fa-clock-o', '#32c777', 1, 0, 1, 0, 0, 0),
    (2, 'Resolved', 'Ticket has been Resolved by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 2, NULL,
        '{"client":"1","admin":"0","assigned_agent_team":"1"}', 1, 2, 'fa fa-check-circle-o', '#5cb85c', NULL, 0, NULL, 0, 0, 0),
    (3, 'Closed', 'Ticket has been Closed by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 2, NULL,
        '{"client":"1","admin":"0","assigned_agent_team":"1"}', 1, 3, 'fa fa-minus-circle', '#5cb85c', 1, 0, NULL, 0, 0, 0),
    (4, 'Deleted', 'Ticket has been Deleted by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 4, NULL,
        '{"client":"0","admin":"0","assigned_agent_team":"0"}', 1, 4, 'fa fa-trash', '#f20630', 1, 0, NULL, 0, 0, 0),
    (5, 'Request for close', 'Approval requested by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 1, 1, 1, 5, NULL,
        '{"client":"0","admin":"0","assigned_agent_team":"0"}', 1, 5, 'fa fa-bell', '#0665f2', 1, 0, NULL, 0, 0, 0),
    (6, 'Spam', 'Ticket has been marked as Spam by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0, 0, 1, 6, NULL,
        '{"client":"0","admin":"0","assigned_agent_team":"0"}', 1, 6, 'glyphicon glyphicon-alert', '#f0ad4e', 1, 0, NULL, 0, 0, 0),
    (7, 'Unapproved', 'Ticket has been marked as Unapproved by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0, 0, 1, 7, NULL,
        '{"client":"0","admin":"1","assigned_agent_team":"0"}', 1, 7, 'fa fa-clock-o', '#f20630', 1, 0, NULL, 0, 0, 0),
    (8, 'Merged', 'Ticket have been marked as Merged by {!!$user!!}', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0, 0, 1, 8, NULL,
        '{"client":"0","admin":"1","assigned_agent_team":"0"}', 1, 7, 'fa fa-clock-o', '#f20630', 1, 0, NULL, 0, 0, 0),
    -- An administrator's own status, as in the ticket_department_updated
    -- example of Faveo's webhook documentation.
    (9, 'On hold', '<p>On hold</p>', '2022-06-16 07:56:15', '2022-06-16 07:56:15', 1, 1, 0, 1, NULL,
        NULL, 1, 12, 'fas fa-bullseye', '#000000', NULL, 0, NULL, 1, 0, 0);

INSERT INTO ticket_source (id, name, value, css_class, description, location, is_default, under_deletion) VALUES
    (1, 'web',      'Web',         'fa fa-globe',    NULL, '', 1, 0),
    (2, 'email',    'E-mail',      'fa fa-envelope', NULL, '', 1, 0),
    (3, 'agent',    'Agent Panel', 'fa fa-user',     NULL, '', 1, 0),
    (4, 'facebook', 'Facebook',    'fa fa-facebook', NULL, '', 1, 0),
    (5, 'twitter',  'Twitter',     'fa fa-twitter',  NULL, '', 1, 0),
    (6, 'call',     'Call',        'fa fa-phone',    NULL, '', 1, 0),
    (7, 'chat',     'Chat',        'fa fa-comment',  NULL, '', 1, 0);

INSERT INTO ticket_priority (id, name, status, priority_desc, priority_color, priority_urgency, ispublic, is_default,
                             created_at, updated_at, under_deletion) VALUES
    (1, 'Low',       1, 'Low',       '#00a65a', 4, 1, 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (2, 'Normal',    1, 'Normal',    '#00bfef', 3, 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (3, 'High',      1, 'High',      '#f39c11', 2, 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (4, 'Emergency', 1, 'Emergency', '#dd4b38', 1, 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0);

INSERT INTO ticket_type (id, name, status, type_desc, ispublic, is_default, created_at, updated_at, under_deletion) VALUES
    (1, 'Question',        1, 'Question',        1, 1, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (2, 'Incident',        1, 'Incident',        1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (3, 'Problem',         1, 'Problem',         1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (4, 'Feature Request', 1, 'Feature Request', 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0);

INSERT INTO department (id, name, type_id, manager, ticket_assignment, outgoing_email_id, template_set,
                        auto_ticket_response, auto_message_response, auto_response_email, recipient, group_access,
                        department_sign, created_at, updated_at, business_hour_id, en_auto_assign, under_deletion) VALUES
    (1, 'Support',   1, NULL, '', NULL, '', '', '', '', '', '', '', '2022-03-22 11:13:00', '2022-03-22 11:13:00', NULL, 0, 0),
    (2, 'Sales',     1, NULL, '', NULL, '', '', '', '', '', '', '', '2022-03-22 11:13:00', '2022-03-22 11:13:00', NULL, 0, 0),
    (3, 'Operation', 1, NULL, '', NULL, '', '', '', '', '', '', '', '2022-03-22 11:13:00', '2022-03-22 11:13:00', NULL, 0, 0);

INSERT INTO teams (id, name, status, team_lead_id, assign_alert, admin_notes, created_at, updated_at, under_deletion) VALUES
    (1, 'Level 1 Support', 1, 2, 1, '', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (2, 'Level 2 Support', 1, 3, 1, '', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0),
    (3, 'Developer',       1, 4, 1, '', '2022-03-22 11:13:00', '2022-03-22 11:13:00', 0);

INSERT INTO help_topic (id, topic, parent_topic, custom_form, department, ticket_status, thank_page, ticket_num_format,
                        internal_notes, status, type, auto_response, created_at, updated_at, linked_departments,
                        under_deletion) VALUES
    (1, 'Support query',     '', NULL, 1, 1, '', '1', '', 1, 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', NULL, 0),
    (2, 'Sales query',       '', NULL, 2, 1, '', '1', '', 1, 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', NULL, 0),
    (3, 'Operational query', '', NULL, 3, 1, '', '1', '', 1, 1, 0, '2022-03-22 11:13:00', '2022-03-22 11:13:00', NULL, 0);

-- Passwords are bcrypt hashes of "password"; they must never reach a payload.
INSERT INTO users (id, user_name, first_name, last_name, email, password, active, is_delete, country_code, mobile,
                   agent_sign, account_type, account_status, primary_dpt, agent_tzone, daylight_save, limit_access,
                   directory_listing, vacation_mode, company, role, profile_pic, remember_token, created_at, updated_at,
                   email_verify, mobile_verify, google2fa_secret, is_2fa_enabled, phone_country_code) VALUES
    (1, 'admin', 'Ada', 'Admin', 'ada.admin@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', 1, '81', '', '', '',
        '', '', 'admin', '', 'rt-admin-secret', '2022-03-22 11:13:00', '2022-03-22 11:15:19', '1', '0',
        'g2fa-admin-secret', 0, ''),
    (2, 'alice', 'Alice', 'Agent', 'alice.agent@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', 1, '81', '', '', '',
        '', '', 'agent', '', NULL, '2022-03-22 11:14:00', '2022-03-22 11:14:00', '1', '0', NULL, 0, ''),
    (3, 'bob', 'Bob', 'Agent', 'bob.agent@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', 2, '81', '', '', '',
        '', '', 'agent', '', NULL, '2022-03-22 11:14:00', '2022-03-22 11:14:00', '1', '0', NULL, 0, ''),
    (4, 'carol', 'Carol', 'Agent', 'carol.agent@helpdesk.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', 3, '81', '', '', '',
        '', '', 'agent', '', NULL, '2022-03-22 11:14:00', '2022-03-22 11:14:00', '1', '0', NULL, 0, ''),
    (5, 'dave@customer.example', 'Dave', 'Client', 'dave@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', NULL, '', '', '', '',
        '', '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', '1', '0', NULL, 0, ''),
    (6, 'erin@customer.example', 'Erin', 'Client', 'erin@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', NULL, '', '', '', '',
        '', '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', '0', '0', NULL, 0, ''),
    (7, 'frank@customer.example', 'Frank', 'Client', 'frank@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', NULL, '', '', '', '',
        '', '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', 'verify-token-frank', '0', NULL, 0, ''),
    (8, 'grace@customer.example', 'Grace', 'Client', 'grace@customer.example',
        '$2y$10$ibNXE7LS66RHOQMOsbNq6uiRAo9MsE9qxLWJUpSRDpjt/Ljx1oY7O', 1, 0, '', NULL, '', '', '', NULL, '', '', '', '',
        '', '', 'user', '', NULL, '2022-04-01 09:00:00', '2022-04-01 09:00:00', '1', '1', NULL, 0, '');
