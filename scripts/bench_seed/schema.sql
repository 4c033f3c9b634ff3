-- The seed's tables: its CDR table (the columns its outline sets) and the agents it
-- learns at login. diallogid is indexed, not unique: the outline checks for a row first.
DROP TABLE IF EXISTS cdr;
DROP TABLE IF EXISTS agent;
CREATE TABLE cdr (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    orgidentity VARCHAR(64) NOT NULL,
    diallogid VARCHAR(64) NOT NULL,
    src VARCHAR(64) NOT NULL,
    dst VARCHAR(64) NOT NULL,
    agentno VARCHAR(64) NOT NULL,
    starttime DATETIME NULL,
    answertime DATETIME NULL,
    endtime DATETIME NULL,
    disposition VARCHAR(16) NOT NULL,
    target VARCHAR(16) NOT NULL,
    KEY cdr_diallogid (diallogid)
) ENGINE=InnoDB;
CREATE TABLE agent (
    orgidentity VARCHAR(64) NOT NULL,
    agentno VARCHAR(64) NOT NULL,
    agentphone VARCHAR(64) NOT NULL,
    PRIMARY KEY (orgidentity, agentno)
) ENGINE=InnoDB;
