-- Faveo helpdesk's schema on MySQL/MariaDB (the tables deskhook reads, and
-- the reference tables the seed fills), for deskhook's tests, demo and
-- benchmark.
--
-- Copied from the schema dump of a Faveo v9 installation (mysqldump of
-- MariaDB 10.6, 2024): each table's column set, column order, types,
-- nullability, defaults, character set and secondary keys are Faveo's, so
-- a binlog reader meets what it meets next to a real Faveo:
--   * ids and references are `int(10) unsigned`; flags are `tinyint(1)`
--     (e.g. tickets.is_transferred, users.active, ticket_thread.is_internal)
--     or plain `int(11)` where Faveo made them so (tickets.closed, isanswered);
--   * `created_at`/`updated_at` and a few newer columns
--     (tickets.response_due_by, resolution_due_by, status_changed_at,
--     assigned_at) are TIMESTAMP — stored as UTC epoch seconds — while
--     the older ones (tickets.duedate, closed_at, reopened_at, lock_at,
--     last_message_at, first_response_time) are DATETIME, a wall clock;
--   * tickets.transferred_at is `datetime NOT NULL` without a default:
--     Faveo never sets it on a new ticket and, its Laravel session not
--     being strict, MySQL stores the zero date '0000-00-00 00:00:00';
--   * ticket_thread.title and body are LONGBLOB (bytes), title nullable,
--     and response_time is the table's last column; ticket_thread is
--     utf8mb4 while the other tables are utf8mb3 (MariaDB's "utf8");
--   * Faveo names the attachment table ticket_attachment (singular) and its
--     file column is a MEDIUMBLOB; ticket_priority's key is `id` and its
--     name `name` (older Faveo: priority_id, priority); teams.team_lead_id
--     (older: team_lead).
-- None of these tables has ENUM or JSON columns in Faveo v9.
--
-- Deviations from Faveo's dump, on purpose:
--   * no foreign keys: tests insert rows out of order (a thread whose
--     ticket the stream has not seen, a user deleted mid-test), and the
--     binlog looks the same with or without them;
--   * no AUTO_INCREMENT start values (the seed's explicit ids set them);
--   * audit_log is not Faveo's (see its comment).
--
-- The PostgreSQL schema (schema.sql) is an older Faveo's translated to
-- PostgreSQL; where the two differ in columns, each follows its source.

CREATE TABLE `ticket_status_type` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `ticket_status` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `message` varchar(255) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `visibility_for_client` tinyint(1) NOT NULL,
  `allow_client` tinyint(1) NOT NULL,
  `visibility_for_agent` tinyint(1) NOT NULL,
  `purpose_of_status` int(11) NOT NULL,
  `secondary_status` int(11) DEFAULT NULL,
  `send_email` varchar(255) DEFAULT NULL,
  `halt_sla` int(11) NOT NULL,
  `order` int(11) NOT NULL,
  `icon` varchar(255) NOT NULL,
  `icon_color` varchar(255) NOT NULL,
  `default` int(11) DEFAULT NULL,
  `send_sms` tinyint(1) NOT NULL DEFAULT 0,
  `auto_close` int(10) unsigned DEFAULT NULL,
  `comment` int(11) NOT NULL DEFAULT 0,
  `under_deletion` tinyint(1) NOT NULL DEFAULT 0,
  `rating_auto_request` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`),
  KEY `ticket_status_auto_close_foreign` (`auto_close`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `ticket_source` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `value` varchar(255) NOT NULL,
  `css_class` varchar(255) NOT NULL,
  `description` longtext DEFAULT NULL,
  `location` varchar(255) NOT NULL,
  `is_default` int(11) NOT NULL DEFAULT 0,
  `under_deletion` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `ticket_priority` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `status` tinyint(1) NOT NULL,
  `priority_desc` varchar(255) NOT NULL,
  `priority_color` varchar(255) NOT NULL,
  `priority_urgency` tinyint(1) NOT NULL,
  `ispublic` tinyint(1) NOT NULL,
  `is_default` tinyint(1) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `under_deletion` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `ticket_type` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `status` int(11) NOT NULL,
  `type_desc` varchar(255) NOT NULL,
  `ispublic` int(11) NOT NULL,
  `is_default` int(11) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `under_deletion` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `department` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `type_id` int(10) unsigned DEFAULT 1,
  `manager` int(10) unsigned DEFAULT NULL,
  `ticket_assignment` varchar(255) NOT NULL,
  `outgoing_email_id` int(10) unsigned DEFAULT NULL,
  `template_set` varchar(255) NOT NULL,
  `auto_ticket_response` varchar(255) NOT NULL,
  `auto_message_response` varchar(255) NOT NULL,
  `auto_response_email` varchar(255) NOT NULL,
  `recipient` varchar(255) NOT NULL,
  `group_access` varchar(255) NOT NULL,
  `department_sign` text NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `business_hour_id` int(10) unsigned DEFAULT NULL,
  `en_auto_assign` tinyint(1) NOT NULL DEFAULT 0,
  `under_deletion` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`),
  KEY `manager_2` (`manager`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `teams` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `status` tinyint(1) NOT NULL,
  `team_lead_id` int(10) unsigned DEFAULT NULL,
  `assign_alert` tinyint(1) NOT NULL,
  `admin_notes` varchar(255) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `under_deletion` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`),
  KEY `team_lead` (`team_lead_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `help_topic` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `topic` varchar(255) NOT NULL,
  `parent_topic` varchar(255) NOT NULL,
  `custom_form` int(10) unsigned DEFAULT NULL,
  `department` int(10) unsigned DEFAULT NULL,
  `ticket_status` int(10) unsigned DEFAULT NULL,
  `thank_page` varchar(255) NOT NULL,
  `ticket_num_format` varchar(255) NOT NULL,
  `internal_notes` text NOT NULL,
  `status` tinyint(1) NOT NULL,
  `type` tinyint(1) NOT NULL,
  `auto_response` tinyint(1) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `linked_departments` varchar(5000) DEFAULT NULL,
  `under_deletion` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`),
  KEY `help_topic_ibfk_2` (`department`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

-- password, remember_token, mobile_verify, email_verify and
-- google2fa_secret are hidden from payloads.
CREATE TABLE `users` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `user_name` varchar(255) NOT NULL,
  `first_name` varchar(255) NOT NULL,
  `last_name` varchar(255) NOT NULL,
  `email` varchar(255) DEFAULT NULL,
  `password` varchar(60) NOT NULL,
  `active` tinyint(1) NOT NULL DEFAULT 1,
  `is_delete` tinyint(1) NOT NULL DEFAULT 0,
  `ext` varchar(255) DEFAULT NULL,
  `country_code` varchar(255) DEFAULT NULL,
  `phone_number` varchar(255) DEFAULT NULL,
  `mobile` varchar(255) DEFAULT NULL,
  `agent_sign` text NOT NULL,
  `account_type` varchar(255) NOT NULL,
  `account_status` varchar(255) NOT NULL,
  `assign_group` int(10) unsigned DEFAULT NULL,
  `primary_dpt` int(10) unsigned DEFAULT NULL,
  `agent_tzone` varchar(255) NOT NULL,
  `daylight_save` varchar(255) NOT NULL,
  `limit_access` varchar(255) NOT NULL,
  `directory_listing` varchar(255) NOT NULL,
  `vacation_mode` varchar(255) NOT NULL,
  `company` varchar(255) NOT NULL,
  `role` varchar(255) NOT NULL,
  `internal_note` varchar(255) DEFAULT NULL,
  `profile_pic` longtext DEFAULT NULL,
  `remember_token` varchar(100) DEFAULT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `user_language` varchar(10) DEFAULT NULL,
  `mobile_verify` varchar(255) NOT NULL DEFAULT '1',
  `email_verify` varchar(255) NOT NULL DEFAULT '1',
  `location` int(11) DEFAULT NULL,
  `google2fa_secret` text DEFAULT NULL,
  `google2fa_activation_date` timestamp NULL DEFAULT NULL,
  `is_2fa_enabled` tinyint(1) NOT NULL DEFAULT 0,
  `last_login_at` timestamp NULL DEFAULT NULL,
  `import_identifier` varchar(255) DEFAULT NULL,
  `delete_account_requested` tinyint(1) NOT NULL DEFAULT 0,
  `processing_account_disabling` tinyint(1) NOT NULL DEFAULT 0,
  `iso` varchar(4) DEFAULT NULL,
  `profile_pic_driver` varchar(255) DEFAULT NULL,
  `notify_unrecognized_login` tinyint(1) NOT NULL DEFAULT 0,
  `phone_country_code` varchar(7) DEFAULT NULL,
  `phone_iso` varchar(4) DEFAULT NULL,
  `deactivated_by` bigint(20) DEFAULT NULL,
  `created_by` bigint(20) DEFAULT NULL,
  `deactivated_at` timestamp NULL DEFAULT NULL,
  `logout_time` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `users_user_name_unique` (`user_name`),
  UNIQUE KEY `users_email_unique` (`email`),
  UNIQUE KEY `users_mobile_unique` (`mobile`),
  KEY `assign_group_3` (`assign_group`),
  KEY `primary_dpt_2` (`primary_dpt`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `tickets` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `ticket_number` varchar(255) NOT NULL,
  `user_id` int(10) unsigned DEFAULT NULL,
  `dept_id` int(10) unsigned DEFAULT NULL,
  `team_id` int(10) unsigned DEFAULT NULL,
  `priority_id` int(10) unsigned DEFAULT NULL,
  `sla` int(10) unsigned DEFAULT NULL,
  `help_topic_id` int(10) unsigned DEFAULT NULL,
  `status` int(10) unsigned DEFAULT NULL,
  `rating` tinyint(1) NOT NULL,
  `ratingreply` tinyint(1) NOT NULL,
  `flags` int(11) NOT NULL,
  `ip_address` int(11) NOT NULL,
  `assigned_to` int(10) unsigned DEFAULT NULL,
  `lock_by` int(11) NOT NULL,
  `lock_at` datetime DEFAULT NULL,
  `source` int(10) unsigned DEFAULT NULL,
  `isoverdue` int(11) NOT NULL,
  `reopened` int(11) NOT NULL,
  `isanswered` int(11) NOT NULL,
  `html` int(11) NOT NULL,
  `is_deleted` int(11) NOT NULL,
  `closed` int(11) NOT NULL,
  `is_transferred` tinyint(1) NOT NULL,
  `transferred_at` datetime NOT NULL,
  `reopened_at` datetime DEFAULT NULL,
  `duedate` datetime DEFAULT NULL,
  `closed_at` datetime DEFAULT NULL,
  `last_message_at` datetime DEFAULT NULL,
  `first_response_time` datetime DEFAULT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `resolution_time` int(11) DEFAULT NULL,
  `is_response_sla` tinyint(1) DEFAULT NULL,
  `is_resolution_sla` tinyint(1) DEFAULT NULL,
  `type` int(10) unsigned DEFAULT NULL,
  `last_estd_duedate` timestamp NULL DEFAULT NULL,
  `location_id` int(11) DEFAULT NULL,
  `creator_id` int(10) unsigned DEFAULT NULL,
  `response_due_by` timestamp NULL DEFAULT NULL,
  `is_manual_duedate` tinyint(1) NOT NULL DEFAULT 0,
  `average_response_time` int(11) DEFAULT NULL,
  `resolution_due_by` timestamp NULL DEFAULT NULL,
  `parent_id` int(10) unsigned DEFAULT NULL,
  `parent_ticket_id` varchar(255) DEFAULT NULL,
  `category_id` int(10) unsigned DEFAULT NULL,
  `status_changed_at` timestamp NULL DEFAULT NULL,
  `assigned_at` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `user_id` (`user_id`),
  KEY `dept_id` (`dept_id`),
  KEY `team_id` (`team_id`),
  KEY `priority_id` (`priority_id`),
  KEY `sla` (`sla`),
  KEY `help_topic_id` (`help_topic_id`),
  KEY `status` (`status`),
  KEY `assigned_to` (`assigned_to`),
  KEY `source` (`source`),
  KEY `ticket_type` (`type`),
  KEY `tickets_duedate_index` (`duedate`),
  KEY `tickets_ticket_number_index` (`ticket_number`),
  FULLTEXT KEY `tickets_ticket_number_fulltext` (`ticket_number`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `ticket_thread` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `ticket_id` int(10) unsigned DEFAULT NULL,
  `user_id` int(10) unsigned DEFAULT NULL,
  `thread_type` varchar(255) DEFAULT NULL,
  `poster` varchar(255) NOT NULL,
  `source` int(10) unsigned DEFAULT NULL,
  `reply_rating` int(11) NOT NULL,
  `rating_count` int(11) NOT NULL,
  `is_internal` tinyint(1) NOT NULL,
  `title` longblob DEFAULT NULL,
  `body` longblob DEFAULT NULL,
  `format` varchar(255) NOT NULL,
  `ip_address` varchar(255) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `response_time` int(11) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `ticket_id_2` (`ticket_id`),
  KEY `user_id` (`user_id`),
  KEY `source` (`source`),
  KEY `ticket_thread_thread_type_index` (`thread_type`),
  KEY `body` (`body`(768)),
  KEY `is_internal` (`is_internal`),
  KEY `title` (`title`(255))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `ticket_collaborator` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `isactive` tinyint(1) NOT NULL,
  `ticket_id` int(10) unsigned DEFAULT NULL,
  `user_id` int(10) unsigned DEFAULT NULL,
  `role` varchar(255) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `ticket_id` (`ticket_id`),
  KEY `user_id` (`user_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

CREATE TABLE `ticket_attachment` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `thread_id` int(10) unsigned DEFAULT NULL,
  `size` varchar(255) NOT NULL,
  `type` varchar(255) NOT NULL,
  `poster` varchar(255) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `file` mediumblob DEFAULT NULL,
  `content_id` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `thread_id` (`thread_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci;

-- Not Faveo's: a table deskhook does not watch, for tests that need writes
-- deskhook must not turn into events (binlog traffic, other tables in the
-- same transaction).
CREATE TABLE `audit_log` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `message` varchar(1000) NOT NULL DEFAULT '',
  `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
